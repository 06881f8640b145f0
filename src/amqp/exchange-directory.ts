import type { Channel, ChannelModel } from 'amqplib';
import { classifyAmqpError, type ClassifiedAmqpError } from './amqp-errors.js';

/**
 * `refused`: RabbitMQ refuses it (missing, declared with other arguments, access refused):
 * publishes to it wait aside. `unknown`: neither declared nor checked on this connection yet.
 */
export type ExchangeStatus = 'exists' | 'refused' | 'unknown';

export interface ExchangeDirectoryOptions {
  now?: () => number;
  /**
   * RabbitMQ refused an exchange (a check found it missing, or a publish was refused). Returns how
   * long to believe it before a publish may check again (Infinity: only when told otherwise).
   */
  onRefused(name: string, error: ClassifiedAmqpError, operation: 'check' | 'publish'): number;
  /** A check found an exchange that exists. */
  onExists(name: string): void;
}

type Entry = { readonly status: 'exists' } | { readonly status: 'refused'; readonly error: ClassifiedAmqpError; readonly until: number };

const EXISTS: Entry = { status: 'exists' };

/**
 * Which exchanges RabbitMQ has on the current connection, and which it refuses. Publishing to a
 * missing exchange makes RabbitMQ close the channel, failing every other unconfirmed publish on
 * it, so the publisher asks here first; an exchange neither declared nor seen yet is checked
 * once, on a channel of its own (a failed check closes that channel, not the publishing one).
 */
export class ExchangeDirectory {
  private readonly known = new Map<string, Entry>();
  private model: ChannelModel | null = null;
  private probe: Promise<Channel> | null = null;
  private readonly checks = new Map<string, Promise<ExchangeStatus>>();
  private readonly now: () => number;

  constructor(private readonly options: ExchangeDirectoryOptions) {
    this.now = options.now ?? Date.now;
  }

  /** A new connection: forget everything but what was just declared, or refused, on it. */
  attach(model: ChannelModel, declared: Iterable<string>, refused: Iterable<readonly [string, ClassifiedAmqpError]> = []): void {
    this.model = model;
    this.probe = null;
    this.known.clear();
    this.checks.clear();
    this.declared(['', ...declared]); // '' is the default exchange
    for (const [name, error] of refused) this.refuse(name, error);
  }

  /** Exchanges just declared on the current connection. */
  declared(names: Iterable<string>): void {
    for (const name of names) this.known.set(name, EXISTS);
  }

  /** RabbitMQ refused this exchange; it stays refused until `until` (ms since the epoch), or until declared or checked again. */
  refuse(name: string, error: ClassifiedAmqpError, until = Infinity): void {
    this.known.set(name, { status: 'refused', error, until });
  }

  /** Forgets what is known of an exchange: the next publish to it checks it. */
  forget(name: string): void {
    this.known.delete(name);
  }

  detach(): void {
    this.model = null;
    this.probe = null;
    this.checks.clear();
  }

  status(name: string): ExchangeStatus {
    const entry = this.known.get(name);
    if (!entry) return 'unknown';
    if (entry.status === 'refused' && this.now() >= entry.until) return 'unknown';
    return entry.status;
  }

  /** RabbitMQ's answer for a refused exchange; null for one that is not refused. */
  refusal(name: string): ClassifiedAmqpError | null {
    const entry = this.known.get(name);
    return entry?.status === 'refused' ? entry.error : null;
  }

  /** The exchanges refused now. */
  refusedNames(): string[] {
    return [...this.known].filter(([name]) => this.status(name) === 'refused').map(([name]) => name);
  }

  /** RabbitMQ closed a channel refusing this exchange: a publish to it, or a check. */
  refusedByBroker(name: string, error: ClassifiedAmqpError, operation: 'check' | 'publish' = 'publish'): void {
    this.refuse(name, error, this.now() + this.options.onRefused(name, error, operation));
  }

  /** Checks (once at a time per name) whether the exchange exists; 'unknown' when not connected. */
  check(name: string): Promise<ExchangeStatus> {
    const running = this.checks.get(name);
    if (running) return running;
    const check = this.runCheck(name).finally(() => this.checks.delete(name));
    this.checks.set(name, check);
    return check;
  }

  private async runCheck(name: string): Promise<ExchangeStatus> {
    const model = this.model;
    if (!model) return 'unknown';
    let channel: Channel;
    try {
      channel = await this.probeChannel(model);
    } catch {
      return 'unknown';
    }
    try {
      await channel.checkExchange(name);
      if (this.model !== model) return 'unknown';
      this.known.set(name, EXISTS);
      this.options.onExists(name);
      return 'exists';
    } catch (error) {
      this.probe = null; // a failed check closes the channel
      const classified = classifyAmqpError(error);
      if (classified.kind !== 'configuration' || this.model !== model) return 'unknown';
      this.refusedByBroker(name, classified, 'check');
      return 'refused';
    }
  }

  private probeChannel(model: ChannelModel): Promise<Channel> {
    if (!this.probe) {
      const probe = model.createChannel().then((channel) => {
        channel.on('error', () => {}); // a 404 from checkExchange arrives as a channel error too
        channel.on('close', () => {
          if (this.probe === probe) this.probe = null;
        });
        return channel;
      });
      probe.catch(() => {
        if (this.probe === probe) this.probe = null;
      });
      this.probe = probe;
    }
    return this.probe;
  }
}
