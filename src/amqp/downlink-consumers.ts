import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import type { DeliveryHandler, DeliveryOutcome } from '../ports.js';

/** Delay before a downlink consumer is set up again after its channel closed on a live connection. */
export const CONSUMER_RETRY_DELAY_MS = 1_000;

/** How long a reload waits for a retired rule's deliveries in hand to settle. */
export const RETIRE_SETTLE_TIMEOUT_MS = 10_000;

/** What the AMQP side needs to know of a downlink rule. */
export interface DownlinkSubscription {
  readonly rule: string;
  /** The queue consumed: the bridge's own (declared and bound) or an existing one. */
  readonly queue: string;
  /** Present when the bridge declares the queue and binds it. */
  readonly binding: { readonly exchange: string; readonly key: string; readonly deadLetterExchange: string | undefined } | null;
  readonly prefetch: number;
}

/**
 * One channel and consumer per downlink rule, set up on every (re)connect and again when a
 * channel closes under a live connection (a deleted queue, say). A delivery is acknowledged,
 * dead-lettered or requeued as the handler settles it; unsettled deliveries go back to the
 * queue when the channel or connection goes, so a crash loses nothing RabbitMQ held.
 */
export class DownlinkConsumers {
  private model: ChannelModel | null = null;
  private readonly channels = new Map<string, { channel: Channel; consumerTag: string }>();
  private unsettled = 0;
  private readonly unsettledByRule = new Map<string, number>();
  private stopping = false;
  private idle: Array<() => void> = [];

  constructor(
    private subscriptions: readonly DownlinkSubscription[],
    private readonly handler: DeliveryHandler,
    private readonly logger: Logger,
  ) {}

  /**
   * Sets up every consumer on a new connection. One that cannot start (its queue is missing,
   * say) is logged and retried on its own; it does not take the connection or the other rules down.
   */
  async attach(model: ChannelModel): Promise<void> {
    this.model = model;
    this.channels.clear();
    for (const subscription of this.subscriptions) {
      try {
        await this.start(model, subscription);
      } catch (error) {
        this.logger.error({ rule: subscription.rule, queue: subscription.queue, err: error }, 'downlink consumer could not start; retrying');
        this.retryLater(model, subscription);
      }
    }
  }

  detach(): void {
    this.model = null;
    this.channels.clear();
  }

  /**
   * New downlink rules (a reload). A removed rule's consumer is cancelled, its deliveries in
   * hand settle, its queue is unbound (so it stops collecting; it is not deleted: what it holds
   * stays for ops or for the rule's return). A changed rule is set up again; others are untouched.
   */
  async update(next: readonly DownlinkSubscription[]): Promise<void> {
    const previous = new Map(this.subscriptions.map((subscription) => [subscription.rule, subscription]));
    this.subscriptions = next;
    const model = this.model;
    for (const [rule, old] of previous) {
      const now = next.find((subscription) => subscription.rule === rule);
      if (now && sameSubscription(old, now)) {
        this.subscriptions = this.subscriptions.map((subscription) => (subscription === now ? old : subscription));
        continue;
      }
      await this.retire(old, now ?? null);
    }
    for (const subscription of this.subscriptions) {
      if (previous.get(subscription.rule) === subscription || !model) continue;
      try {
        await this.start(model, subscription);
      } catch (error) {
        this.logger.error({ rule: subscription.rule, queue: subscription.queue, err: error }, 'downlink consumer could not start; retrying');
        this.retryLater(model, subscription);
      }
    }
  }

  /** Cancels a rule's consumer, lets its deliveries settle, and unbinds what the new rule no longer binds. */
  private async retire(old: DownlinkSubscription, replacement: DownlinkSubscription | null): Promise<void> {
    const running = this.channels.get(old.rule);
    if (!running) return;
    this.channels.delete(old.rule);
    await running.channel.cancel(running.consumerTag).catch(() => {});
    await waitUntil(() => (this.unsettledByRule.get(old.rule) ?? 0) === 0, RETIRE_SETTLE_TIMEOUT_MS);
    const keptBinding =
      replacement?.binding && old.binding && replacement.queue === old.queue && replacement.binding.exchange === old.binding.exchange && replacement.binding.key === old.binding.key;
    if (old.binding && !keptBinding) {
      await running.channel.unbindQueue(old.queue, old.binding.exchange, old.binding.key).catch(() => {});
    }
    await running.channel.close().catch(() => {});
    this.logger.info({ rule: old.rule, queue: old.queue, replaced: replacement !== null }, 'downlink consumer retired');
  }

  /**
   * Stops consuming (graceful shutdown): no new deliveries, and waits up to `timeoutMs` for
   * the ones being handled to settle. Whatever is still unacknowledged returns to the queue
   * when the connection closes.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    const consumers = [...this.channels.values()];
    await Promise.all(consumers.map(({ channel, consumerTag }) => channel.cancel(consumerTag).catch(() => {})));
    if (this.unsettled > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idle.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private async start(model: ChannelModel, subscription: DownlinkSubscription): Promise<void> {
    if (this.stopping) return;
    const channel = await model.createChannel();
    channel.on('error', (error: Error) => this.logger.warn({ rule: subscription.rule, err: error }, 'downlink channel error'));
    channel.on('close', () => {
      // Only a consumer that was running restarts from here; a failed start retries by itself.
      if (this.model !== model || this.channels.get(subscription.rule)?.channel !== channel) return;
      if (!this.subscriptions.includes(subscription)) return;
      this.channels.delete(subscription.rule);
      this.retryLater(model, subscription);
    });
    await channel.prefetch(subscription.prefetch);
    if (subscription.binding) {
      const { exchange, key, deadLetterExchange } = subscription.binding;
      await channel.assertQueue(subscription.queue, {
        durable: true,
        arguments: deadLetterExchange === undefined ? {} : { 'x-dead-letter-exchange': deadLetterExchange },
      });
      await channel.bindQueue(subscription.queue, exchange, key);
    }
    const { consumerTag } = await channel.consume(subscription.queue, (message) => this.onMessage(channel, subscription, message), { noAck: false });
    this.channels.set(subscription.rule, { channel, consumerTag });
    this.logger.info({ rule: subscription.rule, queue: subscription.queue, binding: subscription.binding }, 'downlink consumer started');
  }

  private retryLater(model: ChannelModel, subscription: DownlinkSubscription): void {
    setTimeout(() => {
      if (this.model !== model || this.stopping) return; // the connection went; attach() sets everything up again
      if (!this.subscriptions.includes(subscription)) return; // a reload removed or changed the rule
      this.start(model, subscription).catch((error: Error) => {
        this.logger.error({ rule: subscription.rule, err: error }, 'downlink consumer could not start; retrying');
        this.retryLater(model, subscription);
      });
    }, CONSUMER_RETRY_DELAY_MS).unref();
  }

  private onMessage(channel: Channel, subscription: DownlinkSubscription, message: ConsumeMessage | null): void {
    if (message === null) {
      if (this.stopping) return;
      // RabbitMQ cancelled the consumer (queue deleted): start again, which declares it anew.
      this.logger.warn({ rule: subscription.rule, queue: subscription.queue }, 'downlink consumer cancelled by RabbitMQ; restarting it');
      this.channels.delete(subscription.rule);
      channel.close().catch(() => {});
      if (this.model) this.retryLater(this.model, subscription);
      return;
    }
    let settled = false;
    this.unsettled++;
    this.unsettledByRule.set(subscription.rule, (this.unsettledByRule.get(subscription.rule) ?? 0) + 1);
    const settle = (outcome: DeliveryOutcome) => {
      if (settled) return;
      settled = true;
      try {
        if (outcome === 'ack') channel.ack(message);
        else channel.nack(message, false, outcome === 'requeue');
      } catch {
        // The channel closed meanwhile: RabbitMQ requeues the delivery by itself.
      }
      this.unsettledByRule.set(subscription.rule, (this.unsettledByRule.get(subscription.rule) ?? 1) - 1);
      if (--this.unsettled === 0 && this.idle.length > 0) {
        const waiters = this.idle;
        this.idle = [];
        for (const waiter of waiters) waiter();
      }
    };
    this.handler.onDelivery(
      subscription.rule,
      {
        exchange: message.fields.exchange,
        routingKey: message.fields.routingKey,
        content: message.content,
        headers: message.properties.headers,
        redelivered: message.fields.redelivered,
      },
      settle,
    );
  }
}

function sameSubscription(a: DownlinkSubscription, b: DownlinkSubscription): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}
