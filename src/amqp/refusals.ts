import type { Logger } from 'pino';
import type { ConfigLocator } from '../config/load.js';
import type { BrokerRefusal } from '../ports.js';
import { inequivalentArgument, refusedResource, type BrokerResource, type ClassifiedAmqpError } from './amqp-errors.js';
import type { DownlinkSubscription } from './downlink-consumers.js';

/** What RabbitMQ refused, what the bridge was asking, and which part of the configuration asked. */
export interface Refusal {
  readonly resource: BrokerResource;
  /** RabbitMQ's answer (a configuration error: 403, 404, 405, 406). */
  readonly error: ClassifiedAmqpError;
  /** What the bridge asked of RabbitMQ. */
  readonly operation: 'declare' | 'check' | 'bind' | 'consume' | 'publish';
  /** The configuration entry that asks for it, as a path: `amqp.exchanges[1]`, `uplink[0].exchange`, `downlink[2]`. */
  readonly entry: string;
  /** What waits until RabbitMQ accepts it: `uplink rule telemetry`, `downlink rule commands`. */
  readonly held: readonly string[];
}

export interface RefusalsOptions {
  logger: Logger;
  /** How long until the bridge asks RabbitMQ again (`amqp.refusedRetryMs`). */
  retryMs: number;
  /** Where the configuration's entries are, as FILE:LINE:COL; null: reports name the entry's path only. */
  locate: () => ConfigLocator | null;
}

/**
 * The exchanges and queues RabbitMQ refuses now, by a key the caller chooses (one per thing
 * that waits). Each refusal is logged once, at error level and without a stack: it names what
 * was refused, the argument that differs, the configuration entry as FILE:LINE:COL, and what to
 * change. It is logged again only when RabbitMQ's answer changes, and once more (at info) when
 * it is over. /readyz and the `amqp_refused` metric read the list.
 */
export class Refusals {
  private readonly current = new Map<string, Refusal>();

  constructor(private readonly options: RefusalsOptions) {}

  refuse(key: string, refusal: Refusal): void {
    const known = this.current.get(key);
    this.current.set(key, refusal);
    if (known && known.error.code === refusal.error.code && known.error.text === refusal.error.text) return;
    const { resource, error } = refusal;
    const argument = error.code === 406 ? inequivalentArgument(error.text) : null;
    this.options.logger.error(
      {
        code: 'BRIDGE_ERR_BROKER_REFUSED',
        [resource.kind]: resource.name,
        replyCode: error.code,
        reply: error.text,
        ...(argument ? { argument: argument.name, declared: argument.declared, current: argument.current } : {}),
        config: this.where(refusal.entry),
        held: refusal.held,
        retryInSeconds: this.options.retryMs / 1000,
      },
      this.report(refusal),
    );
  }

  /** RabbitMQ accepts it now, or the configuration no longer asks for it. */
  accept(key: string, why = 'RabbitMQ accepts it now'): void {
    const refusal = this.current.get(key);
    if (!refusal) return;
    this.current.delete(key);
    const { kind, name } = refusal.resource;
    this.options.logger.info({ [kind]: name, held: refusal.held }, `${kind} "${name}": ${why}${refusal.held.length > 0 ? `; ${refusal.held.join(', ')} no longer held` : ''}`);
  }

  has(key: string): boolean {
    return this.current.has(key);
  }

  keys(): string[] {
    return [...this.current.keys()];
  }

  /** One entry per refusal, for /readyz. */
  list(): BrokerRefusal[] {
    return [...this.current.values()].map((refusal) => {
      const { resource, error, held } = refusal;
      return {
        ...resource,
        summary: `${resource.kind} "${resource.name}" refused by RabbitMQ (${error.code} ${error.text}), asked for by ${this.where(refusal.entry)}; held: ${held.length > 0 ? held.join(', ') : 'nothing'}`,
      };
    });
  }

  private report(refusal: Refusal): string {
    const { held } = refusal;
    const heldNow =
      held.length > 0 ? `${held.join(', ')} wait${held.length === 1 ? 's' : ''} until it is fixed; everything else flows` : 'no rule names it; only what is routed to it waits';
    return `${refusalMessage(refusal, this.options.locate())}. ${capitalized(heldNow)}. Retried every ${this.options.retryMs / 1000} s and on reload`;
  }

  private where(path: string): string {
    return placed(path, this.options.locate());
  }
}

/** What RabbitMQ refused and what to change: `RabbitMQ refused exchange "x" (406 ...): set durable: false at FILE:LINE:COL (path), ...`. */
export function refusalMessage(refusal: Refusal, locate: ConfigLocator | null): string {
  const { resource, error } = refusal;
  return `RabbitMQ refused ${resource.kind} "${resource.name}" (${error.code} ${error.text}): ${advice(refusal, (path) => placed(path, locate))}`;
}

/** What RabbitMQ refused for a downlink rule: its queue (declared, consumed) or the exchange it binds to, and the entry that asks. */
export function downlinkRefusal(subscription: Pick<DownlinkSubscription, 'rule' | 'queue' | 'binding' | 'configPath'>, error: ClassifiedAmqpError): Refusal {
  const resource = refusedResource(error.text) ?? { kind: 'queue' as const, name: subscription.queue };
  const { configPath, binding, rule } = subscription;
  const [operation, entry]: [Refusal['operation'], string] =
    resource.kind === 'exchange'
      ? ['bind', `${configPath}.exchange`]
      : binding
        ? [error.code === 406 ? 'declare' : 'consume', configPath]
        : ['consume', `${configPath}.queue`];
  return { resource, error, operation, entry, held: [`downlink rule ${rule}`] };
}

/** `FILE:LINE:COL (path)`, or the path alone without a locator. */
function placed(path: string, locate: ConfigLocator | null): string {
  return locate ? `${locate(path)} (${path})` : path;
}

/** The configuration keys that set the arguments RabbitMQ compares, by RabbitMQ's name for them. */
const EXCHANGE_KEYS: Readonly<Record<string, string>> = { durable: 'durable', auto_delete: 'autoDelete', type: 'type' };
const QUEUE_KEYS: Readonly<Record<string, string>> = { 'x-dead-letter-exchange': 'deadLetterExchange' };

/** What to change, for each kind of refusal. */
function advice(refusal: Refusal, where: (path: string) => string): string {
  const { resource, error, entry, operation } = refusal;
  const what = `${resource.kind} "${resource.name}"`;
  switch (error.code) {
    case 406: {
      const argument = inequivalentArgument(error.text);
      if (!argument) return `make ${what} on RabbitMQ and ${where(entry)} agree`;
      const differs = `RabbitMQ has it with ${argument.name} ${argument.current}, the configuration declares ${argument.declared}`;
      if (resource.kind === 'exchange') {
        const key = EXCHANGE_KEYS[argument.name];
        const change = key ? `set ${key}: ${argument.current} at ${where(`${entry}.${key}`)}, or remove the entry` : `remove the entry at ${where(entry)}`;
        return `${differs}: ${change} to use the exchange as it is, or delete it on RabbitMQ (its bindings go with it) so that the bridge declares it as configured`;
      }
      const key = QUEUE_KEYS[argument.name];
      const change = key ? `set ${key} at ${where(`${entry}.${key}`)} to match, or give the rule another queueName` : `give the rule at ${where(entry)} another queueName`;
      return `${differs}: ${change}, or delete the queue on RabbitMQ (what it holds is lost) so that the bridge declares it as the rule says`;
    }
    case 404:
      if (resource.kind === 'exchange' && entry.startsWith('amqp.exchanges[')) return `it was deleted on RabbitMQ after the bridge declared it (${where(entry)}): the bridge declares it again at the next retry or reload`;
      return resource.kind === 'queue'
        ? `create the queue on RabbitMQ (the bridge consumes a rule's queue but does not declare it), or name an existing one at ${where(entry)}`
        : `declare it under amqp.exchanges or create it on RabbitMQ, or name an existing exchange at ${where(entry)}`;
    case 403:
      if (/reserved prefix/.test(error.text)) return `names starting with "amq." are RabbitMQ's own: rename it at ${where(entry)}`;
      return `grant the bridge's AMQP user ${PERMISSIONS[operation]} permission on ${what} (rabbitmqctl set_permissions), or change ${where(entry)}`;
    case 405:
      return `${what} is exclusive to another connection: close that one, or consume another queue at ${where(entry)}`;
    default:
      return `check ${what} on RabbitMQ and ${where(entry)}`;
  }
}

/** The RabbitMQ permission each operation needs. */
const PERMISSIONS: Readonly<Record<Refusal['operation'], string>> = {
  declare: 'configure',
  check: 'configure',
  bind: 'write (on the queue) and read (on the exchange)',
  consume: 'read',
  publish: 'write',
};

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
