import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { delay, deleteExchanges, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge, TRANSPORTS } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

const exchange = uniqueName('limits');
const MAX_PACKET = 64 * 1024;
const MAX_CONNECTIONS = 4;
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    mqtt: {
      maxPacketBytes: MAX_PACKET,
      maxConnections: MAX_CONNECTIONS,
      maxTopicLevels: 5,
      maxTopicBytes: 100,
      maxSubscriptionsPerClient: 2,
    },
    ...forwardAllTo(exchange),
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await deleteExchanges(exchange);
});

const refused = (limit: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_limits_refused_total', { limit });

for (const transport of TRANSPORTS) {
  describe(`limits over ${transport}`, () => {
    test(`limits ${transport} - a packet announcing more than maxPacketBytes is refused from its header; others are unaffected`, async () => {
      const bystander = await connectClient(bridge.url(transport));
      const attacker = await RawMqttClient.open(transport, bridge.url(transport));
      try {
        await attacker.connect(uniqueName('big'));
        const before = await refused('packet_size');
        // Only the fixed header of a 200 MiB PUBLISH: the bridge must not wait for (or buffer) the body.
        attacker.sendRaw(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x64]));
        await waitFor(() => attacker.closed, 'the oversized connection to be closed', 5_000);
        assert.equal(await refused('packet_size'), before + 1);
        const start = consumer.messages.length;
        await bystander.publishAsync(`limits/${transport}/still-fine`, Buffer.alloc(MAX_PACKET - 100), { qos: 1 });
        const [message] = (await consumer.waitForCount(start + 1)).slice(start);
        assert.equal(message!.content.length, MAX_PACKET - 100, 'a packet within the limit passes');
      } finally {
        attacker.destroy();
        await bystander.endAsync();
      }
    });

    test(`limits ${transport} - a topic with too many levels closes the publisher; a filter over the limits gets 0x80`, async () => {
      const publisher = await RawMqttClient.open(transport, bridge.url(transport));
      const levelsBefore = await refused('topic_levels');
      try {
        await publisher.connect(uniqueName('deep'));
        publisher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [
          { topic: 'a/b/c/d/e/f', qos: 1 },
          { topic: 'ok/filter', qos: 1 },
          { topic: 'x'.repeat(101), qos: 0 },
        ] });
        const suback = (await publisher.next('suback')) as unknown as { granted: number[] };
        assert.deepEqual(suback.granted, [0x80, 1, 0x80]);
        publisher.send({ cmd: 'publish', topic: 'a/b/c/d/e/f', payload: Buffer.from('deep'), qos: 1, messageId: 2, dup: false, retain: false });
        await waitFor(() => publisher.closed, 'the publisher to be disconnected');
        assert.equal(publisher.count('puback'), 0);
        assert.equal(await refused('topic_levels'), levelsBefore + 2);
      } finally {
        publisher.destroy();
      }
    });

    test(`limits ${transport} - a client holds at most maxSubscriptionsPerClient subscriptions`, async () => {
      const client = await RawMqttClient.open(transport, bridge.url(transport));
      try {
        await client.connect(uniqueName('subs'));
        client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 's/1', qos: 0 }, { topic: 's/2', qos: 0 }, { topic: 's/3', qos: 0 }] });
        assert.deepEqual(((await client.next('suback')) as unknown as { granted: number[] }).granted, [0, 0, 0x80]);
        client.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 's/1', qos: 1 }, { topic: 's/4', qos: 0 }] });
        assert.deepEqual(((await client.next('suback')) as unknown as { granted: number[] }).granted, [1, 0x80], 're-subscribing is fine, a new filter is not');
      } finally {
        client.destroy();
      }
    });
  });
}

test('limits - connections past maxConnections are closed at once, over all listeners; a freed place is taken again', async () => {
  const before = await refused('connections');
  const held = [
    await connectClient(bridge.url('tcp')),
    await connectClient(bridge.url('ws')),
    await connectClient(bridge.url('tcp')),
    await connectClient(bridge.url('ws')),
  ];
  try {
    for (const transport of TRANSPORTS) {
      const extra = await RawMqttClient.open(transport, bridge.url(transport)).catch(() => null);
      if (extra) await waitFor(() => extra.closed, `the ${transport} connection past the limit to be closed`, 5_000);
    }
    assert.equal(await refused('connections'), before + 2);
    await held.pop()!.endAsync();
    await delay(200);
    held.push(await connectClient(bridge.url('ws')));
    assert.equal(held[3]!.connected, true);
  } finally {
    await Promise.all(held.map((client) => client.endAsync()));
  }
});
