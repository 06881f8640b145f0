import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { DownlinkConsumers, type DownlinkSubscription } from '../../../src/amqp/downlink-consumers.js';
import { compileDownlinkRule, DownlinkRuleResolver } from '../../../src/mapping/downlink.js';
import { silentLogger } from '../../../src/observability/logger.js';
import type { DeliveryOutcome, InboundDelivery } from '../../../src/ports.js';

/** Stands in for RabbitMQ behind amqplib: queues with their arguments, bindings, consumers. */
class FakeBroker {
  readonly queueArguments = new Map<string, string>();
  readonly bindings = new Set<string>();
  readonly consumers = new Map<string, { queue: string; channel: FakeChannel; onMessage: (message: ConsumeMessage | null) => void }>();
  readonly settled: string[] = [];
  readonly channels: FakeChannel[] = [];
  /** Queues RabbitMQ does not have: consuming them fails with 404. */
  readonly missingQueues = new Set<string>();
  /** While set, basic.cancel waits for it. */
  cancelGate: Promise<void> | null = null;
  private tags = 0;

  model(): ChannelModel {
    return { createChannel: async () => this.openChannel() } as unknown as ChannelModel;
  }

  openChannel(): FakeChannel {
    const channel = new FakeChannel(this);
    this.channels.push(channel);
    return channel;
  }

  nextTag(): string {
    return `ctag-${++this.tags}`;
  }

  /** Delivers to the consumer of `queue`, as RabbitMQ would. */
  deliver(queue: string, routingKey: string): void {
    const consumers = [...this.consumers.values()].filter((consumer) => consumer.queue === queue);
    assert.equal(consumers.length, 1, `one consumer on ${queue}`);
    const message = { fields: { exchange: 'commands', routingKey, redelivered: false, deliveryTag: 1 }, properties: { headers: {} }, content: Buffer.from(routingKey) };
    consumers[0]!.onMessage(message as unknown as ConsumeMessage);
  }

  bindingsOf(queue: string): string[] {
    return [...this.bindings].filter((binding) => binding.startsWith(`${queue} `)).sort();
  }
}

class FakeChannel extends EventEmitter {
  closed = false;

  constructor(private readonly broker: FakeBroker) {
    super();
  }

  async prefetch(): Promise<void> {}

  async assertQueue(queue: string, options: { arguments: Record<string, unknown> }): Promise<void> {
    const args = JSON.stringify(options.arguments);
    const existing = this.broker.queueArguments.get(queue);
    if (existing !== undefined && existing !== args) {
      void this.close();
      throw Object.assign(new Error(`PRECONDITION_FAILED - inequivalent arg for queue '${queue}'`), { code: 406 });
    }
    this.broker.queueArguments.set(queue, args);
  }

  async bindQueue(queue: string, exchange: string, key: string): Promise<void> {
    this.broker.bindings.add(`${queue} ${exchange} ${key}`);
  }

  async unbindQueue(queue: string, exchange: string, key: string): Promise<void> {
    this.broker.bindings.delete(`${queue} ${exchange} ${key}`);
  }

  async consume(queue: string, onMessage: (message: ConsumeMessage | null) => void): Promise<{ consumerTag: string }> {
    if (this.broker.missingQueues.has(queue)) {
      void this.close();
      const text = `NOT_FOUND - no queue '${queue}' in vhost '/'`;
      throw Object.assign(new Error(`Operation failed: BasicConsume; 404 (NOT-FOUND) with message "${text}"`), { code: 404 });
    }
    const consumerTag = this.broker.nextTag();
    this.broker.consumers.set(consumerTag, { queue, channel: this, onMessage });
    return { consumerTag };
  }

  async cancel(consumerTag: string): Promise<void> {
    await this.broker.cancelGate;
    this.broker.consumers.delete(consumerTag);
  }

  ack(message: ConsumeMessage): void {
    if (this.closed) throw new Error('Channel closed');
    this.broker.settled.push(`ack ${message.fields.routingKey}`);
  }

  nack(message: ConsumeMessage, _allUpTo: boolean, requeue: boolean): void {
    if (this.closed) throw new Error('Channel closed');
    this.broker.settled.push(`${requeue ? 'requeue' : 'dead-letter'} ${message.fields.routingKey}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [tag, consumer] of this.broker.consumers) if (consumer.channel === this) this.broker.consumers.delete(tag);
    this.emit('close');
  }
}

function subscription(rule: string, queue: string, routingKey: string, topic: string, deadLetterExchange?: string): DownlinkSubscription {
  const resolver = new DownlinkRuleResolver(compileDownlinkRule({ name: rule, exchange: 'commands', routingKey, topic, qos: 1 }));
  return { rule, queue, binding: { exchange: 'commands', key: resolver.rule.bindingKey!, deadLetterExchange }, prefetch: 10, resolver, configPath: 'downlink[0]' };
}

/** A handler that records the topic each delivery resolves to and keeps its settle for the test. */
function recordingHandler() {
  const handled: Array<{ rule: string; topic: string | undefined; settle: (outcome: DeliveryOutcome) => void }> = [];
  return {
    handled,
    handler: {
      onDelivery(resolver: DownlinkRuleResolver, delivery: InboundDelivery, settle: (outcome: DeliveryOutcome) => void) {
        handled.push({ rule: resolver.rule.name, topic: resolver.resolve(delivery)?.topic, settle });
      },
    },
  };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(condition(), what);
}

test('DownlinkConsumers - a delivery arriving while its consumer is being retired is resolved by the rule that consumer was started with', async () => {
  const broker = new FakeBroker();
  const { handled, handler } = recordingHandler();
  const consumers = new DownlinkConsumers([subscription('cmd', 'q', 'old.{id}', 'old/{id}')], handler, silentLogger());
  await consumers.attach(broker.model());
  let releaseCancel!: () => void;
  broker.cancelGate = new Promise((resolve) => (releaseCancel = resolve));
  const reload = consumers.update([subscription('cmd', 'q', 'new.{id}', 'new/{id}')]);
  await new Promise((resolve) => setImmediate(resolve));
  broker.deliver('q', 'old.1'); // the old binding's message, on the old consumer, before the cancel completes
  assert.deepEqual(handled.map(({ rule, topic }) => [rule, topic]), [['cmd', 'old/1']]);
  handled[0]!.settle('ack');
  broker.cancelGate = null;
  releaseCancel();
  await reload;
  broker.deliver('q', 'new.2');
  assert.deepEqual(handled.map(({ topic }) => topic), ['old/1', 'new/2']);
  assert.deepEqual(broker.settled, ['ack old.1']);
  assert.deepEqual(broker.bindingsOf('q'), ['q commands new.*'], 'the old binding is gone, the new one is there');
});

test('DownlinkConsumers - a reload that changes only the topic keeps the consumer; later deliveries use the new rule', async () => {
  const broker = new FakeBroker();
  const { handled, handler } = recordingHandler();
  const consumers = new DownlinkConsumers([subscription('cmd', 'q', 'c.{id}', 'old/{id}')], handler, silentLogger());
  await consumers.attach(broker.model());
  const [tagBefore] = broker.consumers.keys();
  await consumers.update([subscription('cmd', 'q', 'c.{id}', 'new/{id}')]);
  assert.deepEqual([...broker.consumers.keys()], [tagBefore], 'not restarted');
  broker.deliver('q', 'c.1');
  assert.deepEqual(handled.map(({ topic }) => topic), ['new/1']);
  assert.deepEqual(broker.bindingsOf('q'), ['q commands c.*']);
});

test('DownlinkConsumers - a reload while disconnected: the bindings it drops are removed on the next attach', async () => {
  const broker = new FakeBroker();
  const { handler } = recordingHandler();
  const consumers = new DownlinkConsumers(
    [subscription('gone', 'q-gone', 'g.{id}', 'g/{id}'), subscription('moved', 'q-moved', 'm.{id}', 'm/{id}'), subscription('kept', 'q-kept', 'k.{id}', 'k/{id}')],
    handler,
    silentLogger(),
  );
  await consumers.attach(broker.model());
  consumers.detach(); // the connection went
  broker.consumers.clear();
  await consumers.update([subscription('moved', 'q-moved', 'n.{id}', 'n/{id}'), subscription('kept', 'q-kept', 'k.{id}', 'k/{id}')]);
  await consumers.attach(broker.model());
  assert.deepEqual(broker.bindingsOf('q-gone'), [], 'the removed rule\'s queue no longer collects');
  assert.deepEqual(broker.bindingsOf('q-moved'), ['q-moved commands n.*'], 'the changed rule\'s queue no longer gets the old key');
  assert.deepEqual(broker.bindingsOf('q-kept'), ['q-kept commands k.*']);
  assert.deepEqual([...broker.consumers.values()].map(({ queue }) => queue).sort(), ['q-kept', 'q-moved']);
});

test('DownlinkConsumers - removing a rule whose consumer waits to be retried unbinds its queue at once', async () => {
  const broker = new FakeBroker();
  const { handler } = recordingHandler();
  const consumers = new DownlinkConsumers([subscription('cmd', 'q', 'c.{id}', 'c/{id}')], handler, silentLogger());
  await consumers.attach(broker.model());
  // A dead-letter exchange the existing queue was not declared with: the new consumer cannot start and retries.
  await consumers.update([subscription('cmd', 'q', 'c.{id}', 'c/{id}', 'dlx')]);
  assert.equal(broker.consumers.size, 0, 'the changed rule is waiting to be retried');
  assert.deepEqual(broker.bindingsOf('q'), ['q commands c.*'], 'the new rule wants the same binding');
  await consumers.update([]);
  assert.deepEqual(broker.bindingsOf('q'), [], 'unbound, although no consumer was running');
});

test('DownlinkConsumers - a retired rule\'s deliveries in hand settle before its channel closes', async () => {
  const broker = new FakeBroker();
  const { handled, handler } = recordingHandler();
  const consumers = new DownlinkConsumers([subscription('cmd', 'q', 'c.{id}', 'c/{id}')], handler, silentLogger());
  await consumers.attach(broker.model());
  broker.deliver('q', 'c.1');
  let retired = false;
  const reload = consumers.update([]).then(() => (retired = true));
  await until(() => broker.consumers.size === 0, 'the consumer to be cancelled');
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(retired, false, 'still waiting for the delivery in hand');
  assert.equal(broker.channels[0]!.closed, false);
  handled[0]!.settle('ack');
  await reload;
  assert.deepEqual(broker.settled, ['ack c.1']);
  assert.equal(broker.channels[0]!.closed, true);
  assert.deepEqual(broker.bindingsOf('q'), []);
});

test('DownlinkConsumers - stop waits for the deliveries in hand, up to its timeout', async () => {
  const broker = new FakeBroker();
  const { handled, handler } = recordingHandler();
  const consumers = new DownlinkConsumers([subscription('a', 'qa', 'a.{id}', 'a/{id}'), subscription('b', 'qb', 'b.{id}', 'b/{id}')], handler, silentLogger());
  await consumers.attach(broker.model());
  broker.deliver('qa', 'a.1');
  broker.deliver('qb', 'b.1');
  let stopped = false;
  const stopping = consumers.stop(10_000).then(() => (stopped = true));
  await until(() => broker.consumers.size === 0, 'both consumers to be cancelled');
  handled[0]!.settle('ack');
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(stopped, false, 'b still has one in hand');
  handled[1]!.settle('requeue');
  await stopping;
  assert.deepEqual(broker.settled, ['ack a.1', 'requeue b.1']);

  const other = new FakeBroker();
  const stuck = new DownlinkConsumers([subscription('a', 'qa', 'a.{id}', 'a/{id}')], recordingHandler().handler, silentLogger());
  await stuck.attach(other.model());
  other.deliver('qa', 'a.1');
  const start = Date.now();
  await stuck.stop(50);
  assert.ok(Date.now() - start >= 45, 'gave up after the timeout');
});

/** A rule consuming an existing queue (not declared by the bridge). */
function queueRule(rule: string, queue: string): DownlinkSubscription {
  const resolver = new DownlinkRuleResolver(compileDownlinkRule({ name: rule, queue, topic: `${rule}/{routingKey}`, qos: 1 }));
  return { rule, queue, binding: null, prefetch: 10, resolver, configPath: 'downlink[0]' };
}

test('DownlinkConsumers - a rule whose queue is missing is reported and retried after refusedRetryMs, on its own; the other rule consumes meanwhile', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const broker = new FakeBroker();
  broker.missingQueues.add('q-missing');
  const refused: string[] = [];
  const cleared: string[] = [];
  const consumers = new DownlinkConsumers([queueRule('missing', 'q-missing'), subscription('cmd', 'q', 'c.{id}', 'c/{id}')], recordingHandler().handler, silentLogger(), {
    refusedRetryMs: 60_000,
    onRefused: (subscription, error) => refused.push(`${subscription.rule} ${error.kind} ${error.code} ${error.text}`),
    onCleared: (rule, why) => cleared.push(`${rule} ${why}`),
  });
  await consumers.attach(broker.model());
  assert.deepEqual(refused, ["missing configuration 404 NOT_FOUND - no queue 'q-missing' in vhost '/'"]);
  assert.deepEqual([...broker.consumers.values()].map(({ queue }) => queue), ['q'], 'the other rule consumes');
  t.mock.timers.tick(59_999);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(refused.length, 1, 'not retried before refusedRetryMs');
  t.mock.timers.tick(1);
  await until(() => refused.length === 2, 'a second attempt after refusedRetryMs');
  broker.missingQueues.delete('q-missing');
  t.mock.timers.tick(60_000);
  await until(() => broker.consumers.size === 2, 'the rule to consume once its queue exists');
  assert.deepEqual(cleared, ['cmd started', 'missing started']);
});

test('DownlinkConsumers - retryNow (a reload) starts a waiting rule at once', async () => {
  const broker = new FakeBroker();
  broker.missingQueues.add('q-missing');
  const consumers = new DownlinkConsumers([queueRule('missing', 'q-missing')], recordingHandler().handler, silentLogger(), { refusedRetryMs: 3_600_000, onRefused: () => {} });
  await consumers.attach(broker.model());
  assert.equal(broker.consumers.size, 0);
  broker.missingQueues.delete('q-missing');
  await consumers.retryNow();
  assert.deepEqual([...broker.consumers.values()].map(({ queue }) => queue), ['q-missing']);
  consumers.detach();
});
