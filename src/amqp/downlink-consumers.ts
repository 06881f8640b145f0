import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import { DEFAULT_REFUSED_RETRY_MS } from '../config/schema.js';
import type { DownlinkRuleResolver } from '../mapping/downlink.js';
import type { DeliveryHandler, DeliveryOutcome } from '../ports.js';
import { classifyAmqpError, type ClassifiedAmqpError } from './amqp-errors.js';
import { ownQueueOptions } from './topology.js';

/** Delay before a downlink consumer is set up again after its channel closed on a live connection. */
export const CONSUMER_RETRY_DELAY_MS = 1_000;

/** How long a reload waits for a retired rule's deliveries in hand to settle. */
export const RETIRE_SETTLE_TIMEOUT_MS = 10_000;

export interface QueueBinding {
  readonly queue: string;
  readonly exchange: string;
  readonly key: string;
}

/** What the AMQP side needs to know of a downlink rule. */
export interface DownlinkSubscription {
  readonly rule: string;
  /** The queue consumed: the bridge's own (declared and bound) or an existing one. (AMQP 1.0: the address a receiver link is attached to.) */
  readonly queue: string;
  /** Present when the bridge declares the queue and binds it. */
  readonly binding: { readonly exchange: string; readonly key: string; readonly deadLetterExchange: string | undefined } | null;
  readonly prefetch: number;
  /** Handed to the delivery handler with each delivery of this rule's consumer. */
  readonly resolver: DownlinkRuleResolver;
  /** The rule's entry in the configuration (`downlink[2]`), for the report of what RabbitMQ refuses. */
  readonly configPath: string;
}

export interface DownlinkConsumersOptions {
  /** How long a rule whose queue or exchange RabbitMQ refused waits before it is tried again (`amqp.refusedRetryMs`). */
  refusedRetryMs?: number;
  /** RabbitMQ refused what a rule needs (its queue is missing, say); called on every failed attempt, the caller reports it once. */
  onRefused?(subscription: DownlinkSubscription, error: ClassifiedAmqpError): void;
  /** The rule's consumer started, or the rule was removed or changed: what was refused for it is over. */
  onCleared?(rule: string, why: 'started' | 'retired'): void;
}

interface Consumer {
  readonly channel: Channel;
  consumerTag: string;
  /** A reload that keeps the queue and binding swaps this (the resolver) without restarting the consumer. */
  subscription: DownlinkSubscription;
  unsettled: number;
  /** Called once `unsettled` drops to zero. */
  idle: Array<() => void>;
}

/**
 * One channel and consumer per downlink rule, set up on every (re)connect and again when a
 * channel closes under a live connection (a deleted queue, say). A delivery is acknowledged,
 * dead-lettered or requeued as the handler settles it; unsettled deliveries go back to the
 * queue when the channel or connection goes, so a crash loses nothing RabbitMQ held. A rule
 * whose queue or exchange RabbitMQ refuses is retried on its own, slowly (refusedRetryMs), and
 * at once on a reload; the other rules' consumers run meanwhile.
 */
export class DownlinkConsumers {
  private model: ChannelModel | null = null;
  private subscriptions: ReadonlyMap<string, DownlinkSubscription>;
  /** Running consumers by rule. */
  private readonly consumers = new Map<string, Consumer>();
  /** Bindings a reload dropped that could not be removed then (no connection); removed on the next attach. */
  private readonly staleBindings = new Map<string, QueueBinding>();
  /** Rules waiting to be started again, with their timers. */
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private stopping = false;
  private readonly refusedRetryMs: number;

  constructor(
    subscriptions: readonly DownlinkSubscription[],
    private readonly handler: DeliveryHandler,
    private readonly logger: Logger,
    private readonly options: DownlinkConsumersOptions = {},
  ) {
    this.subscriptions = byRule(subscriptions);
    this.refusedRetryMs = options.refusedRetryMs ?? DEFAULT_REFUSED_RETRY_MS;
  }

  /**
   * Sets up every consumer on a new connection. One that cannot start (its queue is missing,
   * say) is logged and retried on its own; it does not take the connection or the other rules down.
   */
  async attach(model: ChannelModel): Promise<void> {
    this.model = model;
    this.consumers.clear();
    this.cancelRetries();
    const stale = [...this.staleBindings.values()];
    this.staleBindings.clear();
    for (const binding of stale) await this.unbind(model, binding);
    for (const subscription of this.subscriptions.values()) await this.startOrRetry(model, subscription);
  }

  detach(): void {
    this.model = null;
    this.consumers.clear();
    this.cancelRetries();
  }

  /** Starts at once the rules that wait to be retried (a reload: what RabbitMQ refused may be fixed). */
  retryNow(): Promise<void> {
    const model = this.model;
    const waiting = [...this.retries.keys()];
    this.cancelRetries();
    if (!model) return Promise.resolve();
    return Promise.all(waiting.map((rule) => this.startAgain(model, rule))).then(() => undefined);
  }

  /**
   * New downlink rules (a reload). A removed rule's consumer is cancelled, its deliveries in
   * hand settle, its queue is unbound (so it stops collecting; it is not deleted: what it holds
   * stays for ops or for the rule's return). A rule whose queue or binding changed is set up
   * again; one whose only change is how deliveries become publishes keeps its consumer.
   */
  async update(next: readonly DownlinkSubscription[]): Promise<void> {
    const previous = this.subscriptions;
    this.subscriptions = byRule(next);
    const model = this.model;
    const retiring: Array<Promise<void>> = [];
    for (const old of previous.values()) {
      const now = this.subscriptions.get(old.rule);
      if (now && sameConsumer(old, now)) {
        const consumer = this.consumers.get(old.rule);
        if (consumer) consumer.subscription = now;
      } else {
        this.cancelRetry(old.rule); // a changed rule is started below
        retiring.push(this.retire(old));
      }
    }
    await Promise.all(retiring);
    if (!model) return; // attach() starts them on the next connection
    for (const subscription of next) {
      const old = previous.get(subscription.rule);
      if (!old || !sameConsumer(old, subscription)) await this.startOrRetry(model, subscription);
    }
  }

  /**
   * Stops consuming (graceful shutdown): no new deliveries, and waits up to `timeoutMs` for
   * the ones being handled to settle. Whatever is still unacknowledged returns to the queue
   * when the connection closes.
   */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.cancelRetries();
    const consumers = [...this.consumers.values()];
    await Promise.all(consumers.map(({ channel, consumerTag }) => channel.cancel(consumerTag).catch(() => {})));
    await Promise.all(consumers.map((consumer) => settled(consumer, timeoutMs)));
  }

  /** Cancels a rule's consumer (if it runs), lets its deliveries settle, and removes the binding no rule wants any more. */
  private async retire(old: DownlinkSubscription): Promise<void> {
    const consumer = this.consumers.get(old.rule);
    this.consumers.delete(old.rule);
    if (consumer) {
      await consumer.channel.cancel(consumer.consumerTag).catch(() => {});
      await settled(consumer, RETIRE_SETTLE_TIMEOUT_MS);
      await consumer.channel.close().catch(() => {});
    }
    await this.dropBindingIfUnwanted(old);
    this.options.onCleared?.(old.rule, 'retired');
    this.logger.info({ rule: old.rule, queue: old.queue, replaced: this.subscriptions.has(old.rule) }, 'downlink consumer retired');
  }

  private async dropBindingIfUnwanted(subscription: DownlinkSubscription): Promise<void> {
    if (!subscription.binding) return;
    const binding = { queue: subscription.queue, exchange: subscription.binding.exchange, key: subscription.binding.key };
    if (this.wanted(binding)) return;
    if (this.model) await this.unbind(this.model, binding);
    else this.staleBindings.set(bindingId(binding), binding);
  }

  private wanted(binding: QueueBinding): boolean {
    for (const subscription of this.subscriptions.values()) {
      if (subscription.queue === binding.queue && subscription.binding?.exchange === binding.exchange && subscription.binding.key === binding.key) return true;
    }
    return false;
  }

  /** Removes a binding on a channel of its own; one that cannot be removed now is kept for the next attach. */
  private async unbind(model: ChannelModel, binding: QueueBinding): Promise<void> {
    if (this.wanted(binding)) return; // a later reload brought it back
    let channel: Channel | null = null;
    try {
      channel = await model.createChannel();
      channel.on('error', () => {}); // a refused unbind rejects unbindQueue, which says why
      await channel.unbindQueue(binding.queue, binding.exchange, binding.key);
      this.logger.info(binding, 'downlink queue unbound');
    } catch (error) {
      // 404: the queue or the exchange is gone, and the binding with it.
      if (classifyAmqpError(error).code !== 404) this.staleBindings.set(bindingId(binding), binding);
    } finally {
      await channel?.close().catch(() => {});
    }
  }

  private async startOrRetry(model: ChannelModel, subscription: DownlinkSubscription): Promise<void> {
    try {
      await this.start(model, subscription);
    } catch (error) {
      this.failed(model, subscription, error);
    }
  }

  /**
   * A start failed. A refusal (a configuration error) is handed to `onRefused` and retried
   * slowly; anything else (the channel or connection went) is retried soon.
   */
  private failed(model: ChannelModel, subscription: DownlinkSubscription, error: unknown): void {
    const classified = classifyAmqpError(error);
    const { rule, queue } = subscription;
    if (classified.kind === 'configuration') {
      if (this.options.onRefused) this.options.onRefused(subscription, classified);
      else this.logger.error({ rule, queue, replyCode: classified.code, reply: classified.text }, 'RabbitMQ refused what a downlink rule needs; retrying later');
      this.retryLater(model, rule, this.refusedRetryMs);
      return;
    }
    if (classified.kind === 'protocol') this.logger.error({ rule, queue, err: error }, 'downlink consumer could not start (AMQP protocol error); retrying');
    else this.logger.warn({ rule, queue, reason: classified.text }, 'downlink consumer could not start; retrying');
    this.retryLater(model, rule, CONSUMER_RETRY_DELAY_MS);
  }

  private async start(model: ChannelModel, subscription: DownlinkSubscription): Promise<void> {
    if (this.stopping) return;
    const channel = await model.createChannel();
    const consumer: Consumer = { channel, consumerTag: '', subscription, unsettled: 0, idle: [] };
    channel.on('error', (error: Error) => {
      const classified = classifyAmqpError(error);
      // A refusal while starting rejects the start, which reports it; later ones close the channel, which restarts the consumer.
      if (classified.kind === 'protocol') this.logger.error({ rule: subscription.rule, err: error }, 'downlink channel closed by a protocol error');
      else this.logger.debug({ rule: subscription.rule, replyCode: classified.code, reply: classified.text }, 'downlink channel closed');
    });
    channel.on('close', () => {
      // Only a running consumer restarts from here (a retired one is no longer in the map, nor
      // are any after the connection went); a failed start retries by itself.
      if (this.consumers.get(subscription.rule) !== consumer) return;
      this.consumers.delete(subscription.rule);
      this.retryLater(model, subscription.rule, CONSUMER_RETRY_DELAY_MS);
    });
    await channel.prefetch(subscription.prefetch);
    if (subscription.binding) {
      const { exchange, key, deadLetterExchange } = subscription.binding;
      await channel.assertQueue(subscription.queue, ownQueueOptions(deadLetterExchange));
      await channel.bindQueue(subscription.queue, exchange, key);
    }
    const { consumerTag } = await channel.consume(subscription.queue, (message) => this.onMessage(consumer, message), { noAck: false });
    consumer.consumerTag = consumerTag;
    const current = this.subscriptions.get(subscription.rule);
    if (this.model !== model || this.stopping || !current || !sameConsumer(current, subscription) || this.consumers.has(subscription.rule)) {
      // A reload, the connection or another start overtook this one while it was starting.
      await channel.close().catch(() => {});
      await this.dropBindingIfUnwanted(subscription);
      return;
    }
    consumer.subscription = current;
    this.consumers.set(subscription.rule, consumer);
    this.cancelRetry(subscription.rule);
    this.options.onCleared?.(subscription.rule, 'started');
    this.logger.info({ rule: subscription.rule, queue: subscription.queue, binding: subscription.binding }, 'downlink consumer started');
  }

  /** Starts the rule's consumer again after `delayMs`, on this connection, as the rule then reads. */
  private retryLater(model: ChannelModel, rule: string, delayMs: number): void {
    this.cancelRetry(rule);
    const timer = setTimeout(() => {
      if (this.retries.get(rule) !== timer) return;
      this.retries.delete(rule);
      void this.startAgain(model, rule);
    }, delayMs);
    timer.unref();
    this.retries.set(rule, timer);
  }

  private async startAgain(model: ChannelModel, rule: string): Promise<void> {
    if (this.model !== model || this.stopping) return; // the connection went; attach() sets everything up again
    const current = this.subscriptions.get(rule);
    if (!current || this.consumers.has(rule)) return; // a reload removed the rule, or it runs
    try {
      await this.start(model, current);
    } catch (error) {
      this.failed(model, current, error);
    }
  }

  private cancelRetry(rule: string): void {
    const timer = this.retries.get(rule);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.retries.delete(rule);
  }

  private cancelRetries(): void {
    for (const timer of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
  }

  private onMessage(consumer: Consumer, message: ConsumeMessage | null): void {
    const { rule } = consumer.subscription;
    if (message === null) {
      if (this.stopping || this.consumers.get(rule) !== consumer) return;
      // RabbitMQ cancelled the consumer (queue deleted): start again, which declares it anew.
      this.logger.warn({ rule, queue: consumer.subscription.queue }, 'downlink consumer cancelled by RabbitMQ; restarting it');
      this.consumers.delete(rule);
      consumer.channel.close().catch(() => {});
      if (this.model) this.retryLater(this.model, rule, CONSUMER_RETRY_DELAY_MS);
      return;
    }
    let done = false;
    consumer.unsettled++;
    const settle = (outcome: DeliveryOutcome) => {
      if (done) return;
      done = true;
      try {
        if (outcome === 'ack') consumer.channel.ack(message);
        else consumer.channel.nack(message, false, outcome === 'requeue');
      } catch {
        // The channel closed meanwhile: RabbitMQ requeues the delivery by itself.
      }
      if (--consumer.unsettled === 0 && consumer.idle.length > 0) {
        const waiters = consumer.idle;
        consumer.idle = [];
        for (const waiter of waiters) waiter();
      }
    };
    const { exchange, routingKey } = message.fields;
    this.handler.onDelivery(consumer.subscription.resolver, { exchange, routingKey, content: message.content, headers: message.properties.headers }, settle);
  }
}

/** Resolves once the consumer has no delivery in hand, or after `timeoutMs`. */
function settled(consumer: Consumer, timeoutMs: number): Promise<void> {
  if (consumer.unsettled === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    consumer.idle.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function byRule(subscriptions: readonly DownlinkSubscription[]): ReadonlyMap<string, DownlinkSubscription> {
  return new Map(subscriptions.map((subscription) => [subscription.rule, subscription]));
}

/** Whether two subscriptions consume the same way (the resolver aside). */
function sameConsumer(a: DownlinkSubscription, b: DownlinkSubscription): boolean {
  return (
    a.queue === b.queue &&
    a.prefetch === b.prefetch &&
    a.binding?.exchange === b.binding?.exchange &&
    a.binding?.key === b.binding?.key &&
    a.binding?.deadLetterExchange === b.binding?.deadLetterExchange
  );
}

function bindingId(binding: QueueBinding): string {
  return JSON.stringify([binding.queue, binding.exchange, binding.key]);
}
