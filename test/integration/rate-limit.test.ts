import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { delay, deleteExchanges, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge } from '../helpers/bridge.js';

const exchange = uniqueName('rate');
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    ...forwardAllTo(exchange),
    limits: { publishesPerSecond: 20, publishBurst: 5 },
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await deleteExchanges(exchange);
});

const metric = (name: string, labels: Record<string, string> = {}) => bridge.bridge.metrics.value(`mqtt_amqp_bridge_${name}`, labels);

test('rate limit - QoS 0 past publishesPerSecond is dropped and counted, for AMQP and for local subscribers alike', async () => {
  const publisher = await connectClient(bridge.url('tcp'));
  const watcher = await connectClient(bridge.url('ws'));
  let local = 0;
  watcher.on('message', () => local++);
  await watcher.subscribeAsync('rate/zero/#', { qos: 0 });
  try {
    for (let i = 0; i < 50; i++) publisher.publish('rate/zero/x', String(i), { qos: 0 });
    const forwarded = () => consumer.messages.filter((message) => message.fields.routingKey === 'rate.zero.x').length;
    await waitFor(async () => (await metric('uplink_dropped_total', { reason: 'rate_limited' })) + forwarded() === 50, 'every publish dropped or forwarded');
    await waitFor(() => local >= forwarded(), 'the forwarded publishes at the local subscriber');
    await delay(300);
    const dropped = await metric('uplink_dropped_total', { reason: 'rate_limited' });
    assert.ok(forwarded() >= 5 && forwarded() < 20, `${forwarded()} forwarded: the burst and what the rate allowed meanwhile`);
    assert.equal(dropped, 50 - forwarded());
    assert.equal(local, forwarded(), 'a dropped publish reaches no subscriber either');
  } finally {
    await publisher.endAsync();
    await watcher.endAsync();
  }
});

test('rate limit - QoS 1 past publishesPerSecond is delayed, not lost', async () => {
  const publisher = await connectClient(bridge.url('tcp')); // a new client id: a full bucket of its own
  try {
    const started = Date.now();
    await Promise.all(Array.from({ length: 30 }, (_, i) => publisher.publishAsync('rate/one/x', String(i), { qos: 1 })));
    const tookMs = Date.now() - started;
    assert.ok(tookMs >= 1_100, `30 publishes at 20/s after a burst of 5 take about 1.25 s (took ${tookMs} ms)`);
    await waitFor(() => consumer.messages.filter((message) => message.fields.routingKey === 'rate.one.x').length === 30, 'all 30 on AMQP');
    assert.ok((await metric('uplink_rate_delayed_total')) >= 20);
  } finally {
    await publisher.endAsync();
  }
});
