import type { Logger } from 'pino';
import type { Connection, Delivery, EventContext, Receiver } from 'rhea';
import type { DownlinkSubscription } from '../amqp/downlink-consumers.js';
import type { DeliveryHandler, DeliveryOutcome } from '../ports.js';
import { fromAmqp10Message } from './message.js';
import { endSessionLater, endpointError, type PeerError } from './rhea-internals.js';

/** How long a receiver link the broker closed waits before it is attached again. */
export const RECEIVER_RETRY_DELAY_MS = 1_000;

/** Error conditions the bridge rejects a delivery with [AMQP 1.0, 2.8.15]. */
const DECODE_ERROR = 'amqp:decode-error';
const NOT_DELIVERABLE = 'mqtt-amqp-bridge:not-deliverable';

export interface Amqp10ReceiversOptions {
  handler: DeliveryHandler;
  logger: Logger;
  /** A delivery of this rule was rejected: its body is not bytes or a string. */
  onUndecodable?(rule: string): void;
  /** The broker refused a rule's source address (its error), or accepts it again (null). */
  onRefused?(subscription: DownlinkSubscription, error: PeerError | null): void;
}

/** One rule's receiver link on the current connection, and its deliveries in hand. */
interface RuleReceiver {
  subscription: DownlinkSubscription;
  receiver: Receiver | null;
  unsettled: number;
  idle: Array<() => void>;
  retry: NodeJS.Timeout | null;
  refused: boolean;
}

/**
 * The AMQP 1.0 downlink: a receiver link per rule from its `address`, with `prefetch` credit
 * given back one by one as deliveries are settled (so at most `prefetch` are in hand). A delivery
 * is accepted once the MQTT side took it, rejected with an error condition when it cannot become
 * a publish (the broker dead-letters it, if configured to), released when it may succeed later.
 * Deliveries unsettled when the connection goes are the broker's to redeliver.
 */
export class Amqp10Receivers {
  private readonly rules = new Map<string, RuleReceiver>();
  private connection: Connection | null = null;
  private stopping = false;

  constructor(
    subscriptions: readonly DownlinkSubscription[],
    private readonly options: Amqp10ReceiversOptions,
  ) {
    for (const subscription of subscriptions) this.rules.set(subscription.rule, newRule(subscription));
  }

  attach(connection: Connection): void {
    this.connection = connection;
    if (this.stopping) return;
    for (const rule of this.rules.values()) this.open(rule);
  }

  /** The connection is gone: the broker redelivers what was in hand. */
  detach(): void {
    this.connection = null;
    for (const rule of this.rules.values()) this.forget(rule);
  }

  /** A reload: receivers for added rules are attached, those of removed ones detached, changed ones reattached; the others carry on with the new resolver. */
  async update(subscriptions: readonly DownlinkSubscription[]): Promise<void> {
    const next = new Map(subscriptions.map((subscription) => [subscription.rule, subscription]));
    const retired: Array<Promise<void>> = [];
    for (const [name, rule] of this.rules) {
      const wanted = next.get(name);
      if (wanted && sameSource(wanted, rule.subscription)) {
        rule.subscription = wanted;
        next.delete(name);
        continue;
      }
      this.rules.delete(name);
      retired.push(this.retire(rule));
    }
    await Promise.all(retired);
    for (const subscription of next.values()) {
      const rule = newRule(subscription);
      this.rules.set(subscription.rule, rule);
      if (this.connection && !this.stopping) this.open(rule);
    }
  }

  /** No new deliveries (every receiver detached once its deliveries in hand are settled, or after `timeoutMs`). */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.rules.values()].map((rule) => this.retire(rule, timeoutMs)));
  }

  private open(rule: RuleReceiver): void {
    const connection = this.connection;
    if (!connection || rule.receiver) return;
    const { subscription } = rule;
    // A session per link, as for the senders: RabbitMQ 3.x ends the session of a link it refuses.
    const session = connection.create_session();
    session.open();
    const receiver = session.open_receiver({ source: { address: subscription.queue }, credit_window: 0, autoaccept: false, autosettle: true });
    rule.receiver = receiver;
    const current = () => rule.receiver === receiver;
    receiver.on('receiver_open', () => {
      if (!current()) return;
      receiver.add_credit(subscription.prefetch);
      this.options.logger.info({ rule: subscription.rule, address: subscription.queue, prefetch: subscription.prefetch }, 'downlink receiver attached');
      // A broker that refuses the address attaches and detaches at once: still open a turn later, it took it.
      setImmediate(() => {
        if (!current() || !receiver.is_open() || !rule.refused) return;
        rule.refused = false;
        this.options.onRefused?.(rule.subscription, null);
      });
    });
    receiver.on('message', (context: EventContext) => {
      if (!context.delivery || !context.message) return;
      this.onMessage(rule, receiver, context.delivery, context);
    });
    receiver.on('receiver_error', () => {});
    receiver.on('receiver_close', () => closed(endpointError(receiver)));
    session.on('session_error', () => {});
    session.on('session_close', () => closed(endpointError(session)));
    const closed = (error: PeerError | null) => {
      if (!current()) return;
      this.forget(rule);
      endSessionLater(session);
      if (error && !rule.refused) {
        rule.refused = true;
        this.options.logger.error({ rule: subscription.rule, address: subscription.queue, condition: error.condition, description: error.description }, 'the AMQP 1.0 broker refuses the downlink rule\'s address');
        this.options.onRefused?.(rule.subscription, error);
      }
      if (this.stopping || !this.connection) return;
      rule.retry = setTimeout(() => {
        rule.retry = null;
        if (this.rules.get(rule.subscription.rule) === rule) this.open(rule);
      }, RECEIVER_RETRY_DELAY_MS);
      rule.retry.unref();
    };
  }

  private onMessage(rule: RuleReceiver, receiver: Receiver, delivery: Delivery, context: EventContext): void {
    const { subscription } = rule;
    const inbound = fromAmqp10Message(subscription.queue, context.message!);
    rule.unsettled++;
    let done = false;
    const settle = (outcome: DeliveryOutcome, condition?: string, description?: string) => {
      if (done) return;
      done = true;
      rule.unsettled--;
      if (rule.receiver === receiver) {
        if (outcome === 'ack') delivery.accept();
        else if (outcome === 'requeue') delivery.release(); // with parameters rhea would send modified
        else delivery.reject({ condition: condition ?? NOT_DELIVERABLE, description: description ?? 'the bridge cannot make it an MQTT publish' });
        receiver.add_credit(1);
      }
      if (rule.unsettled === 0) for (const waiter of rule.idle.splice(0)) waiter();
    };
    if (!inbound) {
      this.options.logger.warn({ rule: subscription.rule, address: subscription.queue }, 'AMQP 1.0 message rejected: its body is neither data sections nor a binary or string amqp-value');
      this.options.onUndecodable?.(subscription.rule);
      settle('dead-letter', DECODE_ERROR, 'the body is neither data sections nor a binary or string amqp-value');
      return;
    }
    this.options.handler.onDelivery(subscription.resolver, inbound, (outcome) => settle(outcome));
  }

  private forget(rule: RuleReceiver): void {
    rule.receiver = null;
    if (rule.retry) clearTimeout(rule.retry);
    rule.retry = null;
  }

  private async retire(rule: RuleReceiver, timeoutMs = RETIRE_TIMEOUT_MS): Promise<void> {
    const receiver = rule.receiver;
    this.forget(rule);
    if (receiver) {
      // No more credit: the broker sends nothing new while the deliveries in hand settle on this link.
      rule.receiver = receiver;
      receiver.drain_credit();
      await idle(rule, timeoutMs);
      rule.receiver = null;
      receiver.close();
      receiver.session.close();
    }
    if (rule.refused) this.options.onRefused?.(rule.subscription, null);
    this.options.logger.info({ rule: rule.subscription.rule, address: rule.subscription.queue }, 'downlink receiver detached');
  }
}

/** How long a reload waits for a retired rule's deliveries in hand. */
const RETIRE_TIMEOUT_MS = 10_000;

function newRule(subscription: DownlinkSubscription): RuleReceiver {
  return { subscription, receiver: null, unsettled: 0, idle: [], retry: null, refused: false };
}

function sameSource(a: DownlinkSubscription, b: DownlinkSubscription): boolean {
  return a.queue === b.queue && a.prefetch === b.prefetch;
}

function idle(rule: RuleReceiver, timeoutMs: number): Promise<void> {
  if (rule.unsettled === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    rule.idle.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
