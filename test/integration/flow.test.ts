import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import amqplib from 'amqplib';
import { AMQP_URL, delay, deleteExchanges, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, type TestBridge, transientExchange } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';
import { withMemoryAlarm } from '../helpers/rabbitmqctl.js';
import { StallProxy } from '../helpers/stall-proxy.js';

// Broker-wide faults (a memory alarm): the test command runs files one at a time, and
// withMemoryAlarm always restores the watermark.

const exchange = uniqueName('flow');
let consumer: TestConsumer;

before(async () => {
  await withChannel((channel) => channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: false }));
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await deleteExchanges(exchange);
});

/** Publishes `count` QoS 1 messages from each client at once; resolves the acknowledged ids as they come. */
function stream(clients: MqttClient[], topicPrefix: string, count: number, payloadBytes = 100) {
  const acked = new Set<string>();
  const done = Promise.all(
    clients.map((client, c) =>
      Promise.all(
        Array.from({ length: count }, (_, i) => {
          const id = `${c}:${i}`;
          const payload = Buffer.alloc(payloadBytes, 0x20);
          payload.write(id);
          return client.publishAsync(`${topicPrefix}/${c}`, payload, { qos: 1 }).then(() => acked.add(id));
        }),
      ),
    ),
  );
  return { acked, done };
}

function arrivedIds(prefix: string): string[] {
  return consumer.messages
    .filter((message) => message.fields.routingKey.startsWith(`${prefix}.`))
    .map((message) => message.content.toString().trim());
}

describe('flow control through a stalling network path', () => {
  let proxy: StallProxy;
  let bridge: TestBridge;

  before(async () => {
    proxy = await StallProxy.start();
    bridge = await startTestBridge({
      amqp: { url: proxy.url(), heartbeatSeconds: 0, publishTimeoutMs: 60_000 },
      uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
      flow: { maxPendingMessages: 50, maxPendingBytes: 1_024 * 1_024, maxInflightPerClient: 20 },
    });
  });

  after(async () => {
    proxy?.resume();
    await bridge?.stop();
    await proxy?.close();
  });

  test('flow - a stall fills the budget: state throttled, publishers wait unacknowledged, nothing is lost on resume', async () => {
    const clients = await Promise.all(Array.from({ length: 5 }, () => connectClient(bridge.url('tcp'))));
    const states: string[] = [];
    bridge.bridge.flow.on('state', (state) => states.push(state));
    try {
      proxy.stall();
      const { acked, done } = stream(clients, 'stall', 200);
      await waitFor(() => bridge.bridge.flow.state === 'throttled', 'the flow to be throttled');
      await waitFor(() => bridge.bridge.flow.waiting > 0, 'publishes to wait for admission');
      const ackedWhenStalled = acked.size;
      await delay(1_000);
      assert.equal(acked.size, ackedWhenStalled, 'no PUBACK while nothing is confirmed');
      assert.equal(bridge.bridge.flow.pendingMessages, 50, 'exactly the budget is pending');
      const metrics = bridge.bridge.metrics;
      assert.equal(await metrics.value('mqtt_amqp_bridge_flow_state', { state: 'throttled' }), 1, 'the metrics name the state');
      assert.equal(await metrics.value('mqtt_amqp_bridge_flow_state', { state: 'open' }), 0);
      assert.equal(await metrics.value('mqtt_amqp_bridge_flow_pending_messages'), 50);
      assert.ok((await metrics.value('mqtt_amqp_bridge_flow_waiting_publishes')) > 0);
      assert.ok(bridge.bridge.flow.peakPendingMessages <= 50);
      proxy.resume();
      await done;
      assert.equal(acked.size, 1_000);
      await waitFor(() => arrivedIds('stall').length >= 1_000, 'all 1,000 messages on AMQP', 20_000);
      assert.equal(new Set(arrivedIds('stall')).size, 1_000, 'every message arrived');
      assert.deepEqual(states.slice(0, 1), ['throttled']);
      assert.equal(bridge.bridge.flow.state, 'open');
    } finally {
      await Promise.all(clients.map((client) => client.endAsync()));
    }
  });

  test('flow - a QoS 0 flood over the budget: what is dropped is counted, and equals what did not arrive', async () => {
    // Five clients, so that together they fill the budget (50) past their own in-flight limits (20 each).
    const clients = await Promise.all(Array.from({ length: 5 }, () => connectClient(bridge.url('tcp'))));
    const metrics = bridge.bridge.metrics;
    const dropped = async () => (await metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'qos0_overflow' })) - droppedBefore;
    const forwarded = async () => (await metrics.value('mqtt_amqp_bridge_uplink_messages_total', { qos: '0' })) - forwardedBefore;
    const droppedBefore = await metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'qos0_overflow' });
    const forwardedBefore = await metrics.value('mqtt_amqp_bridge_uplink_messages_total', { qos: '0' });
    const SENT = 2_000;
    try {
      proxy.stall();
      clients.forEach((client, c) => {
        for (let i = 0; i < SENT / clients.length; i++) client.publish(`flood/${c}`, `${c}:${i}`, { qos: 0 });
      });
      await waitFor(async () => (await dropped()) + bridge.bridge.flow.pendingMessages + bridge.bridge.flow.waiting >= SENT, 'every QoS 0 publish to be dropped, pending or waiting');
      proxy.resume();
      await waitFor(async () => (await dropped()) + (await forwarded()) === SENT, 'every QoS 0 publish to be dropped or forwarded');
      const droppedCount = await dropped();
      await waitFor(() => arrivedIds('flood').length === SENT - droppedCount, `${SENT - droppedCount} QoS 0 messages on AMQP`);
      await delay(300);
      assert.ok(droppedCount > 0, 'the flood went over the budget');
      assert.equal(arrivedIds('flood').length, SENT - droppedCount, 'dropped = sent - arrived');
    } finally {
      await Promise.all(clients.map((client) => client.endAsync()));
    }
  });
});

describe('flow control under a RabbitMQ memory alarm', () => {
  let bridge: TestBridge;
  const MAX_PENDING_BYTES = 16 * 1024;

  before(async () => {
    bridge = await startTestBridge({
      amqp: { publishTimeoutMs: 60_000 },
      uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
      flow: { maxPendingBytes: MAX_PENDING_BYTES, maxInflightPerClient: 50 },
    });
  });

  after(async () => {
    await bridge?.stop();
  });

  test('flow - during an alarm PUBACKs stop and pending bytes stay within maxPendingBytes; after it everything arrives', async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => connectClient(bridge.url('ws'))));
    try {
      await withMemoryAlarm(async (lift) => {
        const { acked, done } = stream(clients, 'alarm', 250, 1_024);
        await waitFor(() => bridge.bridge.flow.waiting > 0, 'publishes to wait for admission', 20_000);
        const before = acked.size;
        await delay(1_500);
        assert.equal(acked.size, before, 'no PUBACK during the alarm');
        assert.ok(['blocked', 'throttled'].includes(bridge.bridge.flow.state), `flow state ${bridge.bridge.flow.state}`);
        assert.ok(bridge.bridge.flow.peakPendingBytes <= MAX_PENDING_BYTES, `peak ${bridge.bridge.flow.peakPendingBytes} bytes`);
        await lift();
        await done;
        assert.equal(acked.size, 1_000);
      });
      await waitFor(() => new Set(arrivedIds('alarm')).size === 1_000, 'all 1,000 messages on AMQP', 30_000);
      assert.ok(bridge.bridge.flow.peakPendingBytes <= MAX_PENDING_BYTES, 'the budget held throughout');
    } finally {
      await Promise.all(clients.map((client) => client.endAsync()));
    }
  });
});

test('flow - while RabbitMQ has been unreachable longer than refuseConnectionsAfterMs, CONNECT gets return code 3', async () => {
  const proxy = await StallProxy.start(1); // nothing listens on port 1: every AMQP attempt fails
  const bridge = await startTestBridge(
    { amqp: { url: proxy.url(), reconnect: { initialDelayMs: 50, maxDelayMs: 200 } }, flow: { refuseConnectionsAfterMs: 700 } },
    { waitForReady: false },
  );
  try {
    const early = await RawMqttClient.open('tcp', bridge.url('tcp'));
    assert.equal((await early.connect(uniqueName('early'))).returnCode, 0, 'accepted during the first moments of an outage');
    early.destroy();
    await waitFor(() => bridge.bridge.flow.disconnectedForMs() >= 700, 'RabbitMQ to be unreachable for longer than refuseConnectionsAfterMs');
    assert.equal(bridge.bridge.flow.state, 'disconnected');
    for (const transport of ['tcp', 'ws'] as const) {
      const late = await RawMqttClient.open(transport, bridge.url(transport));
      assert.equal((await late.connect(uniqueName('late'))).returnCode, 3, `server unavailable over ${transport}`);
      late.destroy();
    }
  } finally {
    await bridge.stop();
    await proxy.close();
  }
});

test('flow - a stuck subscriber is disconnected after drainTimeoutMs and cannot stall delivery to the others', async () => {
  const commands = uniqueName('flow-commands');
  const queueName = uniqueName('flow-stuck');
  const bridge = await startTestBridge({
    mqtt: { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], drainTimeoutMs: 1_000 },
    amqp: { exchanges: [transientExchange(commands)] },
    downlink: [{ name: 'broadcast', exchange: commands, routingKey: 'all', topic: 'broadcast', qos: 1, queueName }],
  });
  const stuck = await RawMqttClient.open('tcp', bridge.url('tcp'));
  const healthy = await connectClient(bridge.url('tcp'));
  let received = 0;
  healthy.on('message', () => received++);
  try {
    await stuck.connect(uniqueName('stuck'));
    stuck.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'broadcast', qos: 1 }] });
    await stuck.next('suback');
    stuck.stopReading();
    await healthy.subscribeAsync('broadcast', { qos: 1 });
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    const payload = Buffer.alloc(256 * 1024, 0x61);
    for (let i = 0; i < 200; i++) channel.publish(commands, 'all', payload);
    await channel.waitForConfirms();
    await connection.close();
    await waitFor(() => received === 200, () => `all 200 messages at the healthy subscriber (have ${received})`, 30_000);
    // A paused socket does not see its end: read what was buffered, then the close follows.
    stuck.resumeReading();
    await waitFor(() => stuck.closed, 'the stuck subscriber to have been disconnected', 10_000);
    assert.ok(stuck.count('publish') < 200, `the stuck subscriber got ${stuck.count('publish')} of 200 before it was cut off`);
  } finally {
    stuck.destroy();
    await healthy.endAsync();
    await bridge.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(queueName);
      await channel.deleteExchange(commands);
    }).catch(() => {});
  }
});
