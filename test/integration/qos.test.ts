import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { delay, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, TRANSPORTS, type TestBridge } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

const exchange = uniqueName('qos');
const nackExchange = uniqueName('qos-nack');
const prefix = uniqueName('q');

let bridge: TestBridge;
let consumer: TestConsumer;
let nackQueue: TestConsumer;

before(async () => {
  // A queue that refuses everything: RabbitMQ nacks every publish routed to it.
  await withChannel((channel) => channel.assertExchange(nackExchange, 'topic', { durable: false, autoDelete: true }));
  nackQueue = await TestConsumer.create([{ exchange: nackExchange, key: '#' }], { 'x-max-length': 0, 'x-overflow': 'reject-publish' });
  bridge = await startTestBridge({
    amqp: { exchanges: [{ name: exchange, type: 'topic', durable: false, autoDelete: true }] },
    uplink: [
      { name: 'nacked', topic: `${prefix}/nack/#`, exchange: nackExchange, routingKey: '{#}' },
      { name: 'anywhere', topic: `${prefix}/to/{target}/#`, exchange: '{target}', routingKey: '{#}' },
      { name: 'all', topic: `${prefix}/#`, exchange, routingKey: '{#}' },
    ],
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await nackQueue?.close();
  await bridge?.stop();
});

for (const transport of TRANSPORTS) {
  describe(`QoS 2 over ${transport}`, () => {
    test(`QoS 2 ${transport} - one AMQP message although the client resends PUBLISH and PUBREL`, async () => {
      const client = await RawMqttClient.open(transport, bridge.url(transport));
      try {
        assert.equal((await client.connect(uniqueName('raw'))).returnCode, 0);
        const topic = `${prefix}/exactly-once/${transport}`;
        const before = consumer.messages.length;
        client.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 7, dup: false, retain: false });
        assert.equal((await client.next('pubrec')).messageId, 7);
        // [MQTT-4.3.3-2]: a resent PUBLISH before PUBREL must not be delivered again.
        client.send({ cmd: 'publish', topic, payload: Buffer.from('once'), qos: 2, messageId: 7, dup: true, retain: false });
        assert.equal((await client.next('pubrec')).messageId, 7);
        client.send({ cmd: 'pubrel', messageId: 7 });
        assert.equal((await client.next('pubcomp')).messageId, 7);
        client.send({ cmd: 'pubrel', messageId: 7 });
        assert.equal((await client.next('pubcomp')).messageId, 7);
        await consumer.waitForCount(before + 1);
        await delay(300);
        const arrived = consumer.messages.slice(before).filter((message) => message.properties.headers?.['x-mqtt-topic'] === topic);
        assert.equal(arrived.length, 1);
        assert.equal(arrived[0]!.content.toString(), 'once');
      } finally {
        client.destroy();
      }
    });

    test(`QoS 2 ${transport} - a persistent session that reconnects mid-handshake still gives one message`, async () => {
      const clientId = uniqueName('raw-session');
      const topic = `${prefix}/session/${transport}`;
      const before = consumer.messages.length;
      const first = await RawMqttClient.open(transport, bridge.url(transport));
      await first.connect(clientId, false);
      first.send({ cmd: 'publish', topic, payload: Buffer.from('kept'), qos: 2, messageId: 11, dup: false, retain: false });
      await first.next('pubrec');
      first.destroy(); // the PUBREC is lost with the connection
      const second = await RawMqttClient.open(transport, bridge.url(transport));
      try {
        const connack = await second.connect(clientId, false);
        assert.equal(connack.returnCode, 0);
        second.send({ cmd: 'publish', topic, payload: Buffer.from('kept'), qos: 2, messageId: 11, dup: true, retain: false });
        await second.next('pubrec');
        second.send({ cmd: 'pubrel', messageId: 11 });
        await second.next('pubcomp');
        await consumer.waitForCount(before + 1);
        await delay(300);
        const arrived = consumer.messages.slice(before).filter((message) => message.properties.headers?.['x-mqtt-topic'] === topic);
        assert.equal(arrived.length, 1);
      } finally {
        second.destroy();
      }
    });

    test(`QoS 1 ${transport} - a nacked publish is never acknowledged and the device is disconnected`, async () => {
      const client = await RawMqttClient.open(transport, bridge.url(transport));
      const failedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'nacked' });
      try {
        await client.connect(uniqueName('raw-nack'));
        client.send({ cmd: 'publish', topic: `${prefix}/nack/a`, payload: Buffer.from('no'), qos: 1, messageId: 3, dup: false, retain: false });
        await waitFor(() => client.closed, 'the bridge to disconnect the client');
        assert.equal(client.count('puback'), 0);
        assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'nacked' }), failedBefore + 1);
      } finally {
        client.destroy();
      }
    });

    test(`QoS 2 ${transport} - a nacked publish gets no PUBREC, and its resend is forwarded again`, async () => {
      const clientId = uniqueName('raw-nack2');
      const client = await RawMqttClient.open(transport, bridge.url(transport));
      const failedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'nacked' });
      try {
        await client.connect(clientId, false);
        client.send({ cmd: 'publish', topic: `${prefix}/nack/b`, payload: Buffer.from('no'), qos: 2, messageId: 5, dup: false, retain: false });
        await waitFor(() => client.closed, 'the bridge to disconnect the client');
        assert.equal(client.count('pubrec'), 0);
      } finally {
        client.destroy();
      }
      // The resend must reach RabbitMQ again (and be nacked again), not be taken for a duplicate.
      const again = await RawMqttClient.open(transport, bridge.url(transport));
      try {
        await again.connect(clientId, false);
        again.send({ cmd: 'publish', topic: `${prefix}/nack/b`, payload: Buffer.from('no'), qos: 2, messageId: 5, dup: true, retain: false });
        await waitFor(() => again.closed, 'the bridge to disconnect the client again');
        assert.equal(again.count('pubrec'), 0);
        assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'nacked' }), failedBefore + 2);
      } finally {
        again.destroy();
      }
    });
  });
}

test('QoS 0 - a nacked QoS 0 publish is dropped and counted, never retried', async () => {
  const client = await connectClient(bridge.url('tcp'));
  try {
    const droppedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'qos0_failed' });
    await client.publishAsync(`${prefix}/nack/zero`, Buffer.from('z'), { qos: 0 });
    await waitFor(
      async () => (await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'qos0_failed' })) === droppedBefore + 1,
      'the QoS 0 drop to be counted',
    );
    await delay(500);
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'qos0_failed' }), droppedBefore + 1, 'not retried');
    assert.equal(client.connected, true);
  } finally {
    await client.endAsync();
  }
});

test('exchange not found - a rendered exchange that does not exist: QoS 1 is not acknowledged, QoS 0 is dropped as exchange_refused, and the channel keeps working', async () => {
  const raw = await RawMqttClient.open('tcp', bridge.url('tcp'));
  const client = await connectClient(bridge.url('tcp'));
  try {
    assert.equal((await raw.connect(uniqueName('raw'))).returnCode, 0);
    const missing = uniqueName('missing');
    const droppedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'exchange_refused' });
    raw.send({ cmd: 'publish', topic: `${prefix}/to/${missing}/x`, payload: Buffer.from('held'), qos: 1, messageId: 3, dup: false, retain: false });
    await client.publishAsync(`${prefix}/to/${missing}/y`, Buffer.from('lost'), { qos: 0 });
    await waitFor(
      async () => (await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'exchange_refused' })) === droppedBefore + 1,
      'the QoS 0 drop to be counted',
    );
    const before = consumer.messages.length;
    await client.publishAsync(`${prefix}/after-missing`, Buffer.from('ok'), { qos: 1 });
    await consumer.waitForCount(before + 1);
    assert.equal(consumer.messages[before]!.fields.routingKey, 'after-missing');
    // The old behaviour acknowledged it at once; now it waits for the exchange until amqp.publishTimeoutMs (10 s here).
    assert.equal(raw.count('puback'), 0, 'the QoS 1 publish to the missing exchange is not acknowledged');
  } finally {
    raw.destroy();
    await client.endAsync();
  }
});
