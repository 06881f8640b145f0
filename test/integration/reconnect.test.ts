import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AMQP_URL, delay, deleteExchanges, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import amqplib from 'amqplib';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge, transientExchange } from '../helpers/bridge.js';
import { closeConnectionsNamed, connectionPids } from '../helpers/rabbitmqctl.js';
import { captureLogs } from '../helpers/log-capture.js';

const exchange = uniqueName('reconnect');
const connectionName = uniqueName('bridge-reconnect');
const RECONNECT_DELAY_MS = 1_500;
let bridge: TestBridge;

before(async () => {
  bridge = await startTestBridge({
    amqp: {
      connectionName,
      exchanges: [transientExchange(exchange)],
      // Long enough for a test to publish while the bridge waits to reconnect.
      reconnect: { initialDelayMs: RECONNECT_DELAY_MS, maxDelayMs: RECONNECT_DELAY_MS },
    },
    uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
  });
});

after(async () => {
  await bridge?.stop();
  await deleteExchanges(exchange);
});

test('reconnect - after RabbitMQ closes the connection the bridge reconnects, declares its exchanges again and forwards', async () => {
  assert.equal((await connectionPids(connectionName)).length, 1);
  // The exchange disappears while the bridge is connected; it must come back with the reconnect.
  await withChannel((channel) => channel.deleteExchange(exchange));
  assert.equal(await closeConnectionsNamed(connectionName), 1);
  await waitFor(async () => bridge.bridge.amqpState === 'connected' && (await connectionPids(connectionName)).length === 1, 'the bridge to reconnect');
  await withChannel((channel) => channel.checkExchange(exchange)); // throws if not declared again
  const consumer = await TestConsumer.create([{ exchange, key: '#' }]);
  const client = await connectClient(bridge.url('tcp'));
  try {
    await client.publishAsync('after/reconnect', 'back', { qos: 1 });
    const [message] = await consumer.waitForCount(1);
    assert.equal(message!.fields.routingKey, 'after.reconnect');
    assert.equal(message!.content.toString(), 'back');
  } finally {
    await client.endAsync();
    await consumer.close();
  }
});

test('reconnect - a QoS 1 publish waiting while RabbitMQ is away is acknowledged once it is back, and arrives', async () => {
  const consumer = await TestConsumer.create([{ exchange, key: 'waiting.#' }]);
  const client = await connectClient(bridge.url('ws'));
  const reconnectsBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_amqp_reconnects_total');
  try {
    const closed = closeConnectionsNamed(connectionName);
    await waitFor(() => bridge.bridge.amqpState !== 'connected', 'the bridge to see RabbitMQ close the connection');
    const published = client.publishAsync('waiting/one', 'kept', { qos: 1 });
    await waitFor(() => bridge.bridge.flow.waiting === 1, 'the publish to wait for admission');
    assert.notEqual(bridge.bridge.amqpState, 'connected', 'RabbitMQ was still away when the publish arrived');
    await published;
    assert.equal(await closed, 1);
    const [message] = await consumer.waitForCount(1);
    assert.equal(message!.content.toString(), 'kept');
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_amqp_reconnects_total'), reconnectsBefore + 1);
  } finally {
    await client.endAsync();
    await consumer.close();
  }
});

// Before issue 11 such a conflict failed every connection attempt (retried forever, a stack trace each
// time); it is now a configuration error of that exchange alone (test/integration/broker-conflicts.test.ts).
test('reconnect - an exchange that exists with another type does not fail the connection: it is reported once and the bridge connects', async () => {
  const clash = uniqueName('clash');
  await withChannel((channel) => channel.assertExchange(clash, 'fanout', { durable: false, autoDelete: false }));
  const { logger, lines } = captureLogs();
  const failing = await startTestBridge(
    {
      amqp: { exchanges: [{ name: clash, type: 'topic', durable: false }], reconnect: { initialDelayMs: 50, maxDelayMs: 200 } },
      uplink: [{ name: 'all', topic: '#', exchange: clash }],
    },
    { logger },
  );
  try {
    assert.equal(failing.bridge.amqpState, 'connected');
    const refusals = lines.filter((line) => line.code === 'BRIDGE_ERR_BROKER_REFUSED');
    assert.equal(refusals.length, 1);
    assert.match(String(refusals[0]!.reply), /PRECONDITION_FAILED - inequivalent arg 'type'/);
    const client = await connectClient(failing.url('tcp'));
    await client.endAsync();
    assert.deepEqual(lines.filter((line) => line.msg === 'AMQP connection attempt failed' || line.msg === 'AMQP connection lost; reconnecting'), []);
  } finally {
    await failing.stop();
    await withChannel((channel) => channel.deleteExchange(clash));
  }
});

test('reconnect - downlink consumers come back after the connection is closed, and a rule can consume an existing queue', async () => {
  const prefix = uniqueName('rc-down');
  const commands = uniqueName('rc-commands');
  const ownQueue = uniqueName('rc-own');
  const existing = uniqueName('rc-existing');
  const name = uniqueName('bridge-rc-down');
  await withChannel(async (channel) => {
    await channel.assertExchange(commands, 'topic', { durable: false, autoDelete: false });
    await channel.assertQueue(existing, { durable: false, autoDelete: false });
  });
  const down = await startTestBridge({
    amqp: { connectionName: name, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
    downlink: [
      { name: 'bound', exchange: commands, routingKey: '{device}.#', topic: `${prefix}/{device}/{#}`, qos: 1, queueName: ownQueue },
      { name: 'existing', queue: existing, topic: `${prefix}/from-queue/{routingKey}`, qos: 1 },
    ],
  });
  const received: string[] = [];
  const device = await connectClient(down.url('tcp'));
  device.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
  try {
    await device.subscribeAsync(`${prefix}/#`, { qos: 1 });
    await closeConnectionsNamed(name);
    await waitFor(async () => down.bridge.amqpState === 'connected' && (await connectionPids(name)).length === 1, 'the bridge to reconnect');
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.publish(commands, 'd1.after.reconnect', Buffer.from('bound'));
    channel.sendToQueue(existing, Buffer.from('direct'));
    await channel.waitForConfirms();
    await connection.close();
    await waitFor(() => received.length === 2, () => `both commands after the reconnect (have ${JSON.stringify(received)})`);
    assert.deepEqual(received.sort(), [`${prefix}/d1/after/reconnect bound`, `${prefix}/from-queue/${existing} direct`].sort());
  } finally {
    await device.endAsync();
    await down.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(ownQueue);
      await channel.deleteQueue(existing);
      await channel.deleteExchange(commands);
    }).catch(() => {});
  }
});

test('reconnect - a rule whose queue does not exist yet is retried on its own; everything else works meanwhile', async () => {
  const prefix = uniqueName('rc-missing');
  const missing = uniqueName('rc-missing-queue');
  const up = uniqueName('rc-missing-up');
  const partial = await startTestBridge({
    ...forwardAllTo(up),
    amqp: { ...forwardAllTo(up).amqp, refusedRetryMs: 200 }, // a missing queue is retried slowly: here, soon
    downlink: [{ name: 'later', queue: missing, topic: `${prefix}/{routingKey}`, qos: 1 }],
  });
  const consumer = await TestConsumer.create([{ exchange: up, key: '#' }]);
  const received: string[] = [];
  const device = await connectClient(partial.url('tcp'));
  device.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
  try {
    await device.publishAsync('still/up', 'yes', { qos: 1 });
    const [message] = await consumer.waitForCount(1);
    assert.equal(message!.fields.routingKey, 'still.up');
    await device.subscribeAsync(`${prefix}/#`, { qos: 1 });
    await withChannel((channel) => channel.assertQueue(missing, { durable: false, autoDelete: false }));
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(missing, Buffer.from('found'));
    await channel.waitForConfirms();
    await connection.close();
    await waitFor(() => received.length === 1, 'the consumer to start once the queue exists');
    assert.deepEqual(received, [`${prefix}/${missing} found`]);
  } finally {
    await device.endAsync();
    await consumer.close();
    await partial.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(missing);
      await channel.deleteExchange(up);
    }).catch(() => {});
  }
});

test('shutdown - stopping the bridge publishes no last wills [MQTT-3.1.2-8]', async () => {
  const up = uniqueName('rc-wills');
  const stopping = await startTestBridge(forwardAllTo(up));
  const consumer = await TestConsumer.create([{ exchange: up, key: '#' }]);
  try {
    const client = await connectClient(stopping.url('tcp'), { will: { topic: 'wills/on-shutdown', payload: Buffer.from('x'), qos: 1, retain: false } });
    client.on('error', () => {});
    await stopping.stop();
    await delay(500);
    assert.equal(consumer.messages.length, 0);
    // Had a will been tried, it would have failed against the closed publisher and been counted.
    assert.equal(await stopping.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'shutdown' }), 0);
    client.end(true);
  } finally {
    await consumer.close();
    await deleteExchanges(up);
  }
});
