import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
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

/** The header of one masked binary WebSocket frame (a client's) announcing `length` payload bytes [RFC 6455 5.2]. */
function wsFrameHeader(length: number): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 0x82; // FIN, binary
  header[1] = 0x80 | 127; // masked, 64-bit length follows
  header.writeBigUInt64BE(BigInt(length), 2);
  header.writeUInt32BE(0x12345678, 10); // the masking key
  return header;
}

test('limits ws - a WebSocket message far over maxPacketBytes is refused from its frame header, not buffered; others are unaffected', async () => {
  const bystander = await connectClient(bridge.url('ws'));
  const attacker = new WebSocket(bridge.url('ws'), 'mqtt');
  let closed = false;
  attacker.on('close', () => (closed = true));
  attacker.on('error', () => {});
  await new Promise((resolve, reject) => attacker.once('open', resolve).once('error', reject));
  try {
    const before = await refused('packet_size');
    // 90 MiB announced and 1 MiB sent: were the message buffered (ws' own limit is 100 MiB), the
    // connection would stay open waiting for the rest, holding what came so far.
    const socket = (attacker as unknown as { _socket: Socket })._socket;
    socket.write(wsFrameHeader(90 * 1024 * 1024));
    socket.write(Buffer.alloc(1024 * 1024));
    await waitFor(() => closed, 'the connection sending the oversized message to be closed', 5_000);
    assert.equal(await refused('packet_size'), before + 1);
    await waitFor(
      async () => (await bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_connections', { listener: 'ws' })) === 1,
      'only the bystander to be connected over ws',
    );
    const start = consumer.messages.length;
    await bystander.publishAsync('limits/ws/after-oversized', Buffer.alloc(MAX_PACKET - 100), { qos: 1 });
    const [message] = (await consumer.waitForCount(start + 1)).slice(start);
    assert.equal(message!.content.length, MAX_PACKET - 100, 'a packet within the limit, sent as one message, passes');
  } finally {
    attacker.terminate();
    await bystander.endAsync();
  }
});

test('limits ws - one WebSocket message may carry several packets, more than maxPacketBytes in all [MQTT-6.0.0-2]', async () => {
  const client = await RawMqttClient.open('ws', bridge.url('ws'));
  try {
    await client.connect(uniqueName('batch'));
    const start = consumer.messages.length;
    const publish = (messageId: number) =>
      mqttPacket.generate({ cmd: 'publish', topic: `limits/ws/batch/${messageId}`, payload: Buffer.alloc(MAX_PACKET - 100), qos: 1, messageId, dup: false, retain: false });
    client.sendRaw(Buffer.concat([publish(1), publish(2)])); // one write, one WebSocket message
    const arrived = (await consumer.waitForCount(start + 2)).slice(start);
    assert.deepEqual(arrived.map((message) => message.fields.routingKey).sort(), ['limits.ws.batch.1', 'limits.ws.batch.2']);
    await waitFor(() => client.count('puback') === 2, 'both PUBACKs');
    assert.equal(client.closed, false);
  } finally {
    client.destroy();
  }
});

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
    await waitFor(async () => (await bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_connections', { listener: 'ws' })) === 1, 'the freed ws connection to be gone');
    const taken = await connectClient(bridge.url('ws'));
    held.push(taken);
    let closed = false;
    taken.on('close', () => {
      closed = true;
    });
    await delay(300);
    assert.equal(closed, false, 'the freed place was taken, not refused');
  } finally {
    await Promise.all(held.map((client) => client.endAsync()));
  }
});
