import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { hashPassword } from '../../src/auth/passwords.js';
import { delay, publishConfirmed, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, transientExchange, type TestBridge, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

const uplink = uniqueName('retained-up');
const commands = uniqueName('retained-commands');
const deadLetters = uniqueName('retained-dead');
const downlinkQueue = uniqueName('retained-config');
const PASSWORDS = { alice: 'alice-secret', bob: 'bob-secret' } as const;
type User = keyof typeof PASSWORDS | 'anonymous';

const MAX_PER_USER = 3;
const MAX_BYTES_PER_USER = 3_000;
const MAX_TOTAL = 8;

let bridge: TestBridge;
let forwarded: TestConsumer;
let deadLettered: TestConsumer;

before(async () => {
  const users = await Promise.all(Object.entries(PASSWORDS).map(async ([username, password]) => ({ username, password: await hashPassword(password) })));
  bridge = await startTestBridge({
    mqtt: {
      maxRetainedMessages: MAX_TOTAL,
      maxRetainedBytes: 1024 * 1024,
      maxRetainedMessagesPerUser: MAX_PER_USER,
      maxRetainedBytesPerUser: MAX_BYTES_PER_USER,
    },
    auth: { anonymous: true, users },
    acl: [
      { allow: 'publish', topic: 'devices/{username}/#' },
      { allow: ['publish', 'subscribe'], topic: 'public/#' },
      { allow: 'subscribe', topic: 'devices/#' },
    ],
    amqp: { exchanges: [transientExchange(uplink), transientExchange(commands), { name: deadLetters, type: 'fanout', durable: false, autoDelete: false }] },
    uplink: [{ name: 'all', topic: '#', exchange: uplink, routingKey: '{#}' }],
    downlink: [
      { name: 'config', exchange: commands, routingKey: 'config.{device}', topic: 'devices/{device}/config', qos: 1, retain: true, queueName: downlinkQueue, deadLetterExchange: deadLetters },
    ],
  });
  forwarded = await TestConsumer.create([{ exchange: uplink, key: '#' }]);
  deadLettered = await TestConsumer.create([{ exchange: deadLetters, key: '' }]);
});

after(async () => {
  await forwarded?.close();
  await deadLettered?.close();
  await bridge?.stop();
  await withChannel(async (channel) => {
    await channel.deleteQueue(downlinkQueue);
    for (const exchange of [uplink, commands, deadLetters]) await channel.deleteExchange(exchange);
  }).catch(() => {});
});

const credentials = (user: User) => (user === 'anonymous' ? {} : { username: user, password: PASSWORDS[user] });
const refusals = (limit: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_limits_refused_total', { limit });
const storedCount = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_retained_messages');
const storedBytes = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_retained_bytes');
/** What reached RabbitMQ on a topic. */
const forwardedOn = (topic: string) => forwarded.messages.filter((message) => message.properties.headers?.['x-mqtt-topic'] === topic);

function client(transport: Transport, user: User): Promise<MqttClient> {
  return connectClient(bridge.url(transport), { clientId: uniqueName(user), ...credentials(user) });
}

/** A raw connection of this user, logged in. */
async function raw(transport: Transport, user: User): Promise<RawMqttClient> {
  const connection = await RawMqttClient.open(transport, bridge.url(transport));
  connection.sendConnect({ clientId: uniqueName(`raw-${user}`), ...credentials(user) });
  assert.equal(((await connection.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
  return connection;
}

/** Publishes retained messages as `user`, each acknowledged (QoS 1). */
async function retain(transport: Transport, user: User, messages: Record<string, string | Buffer>): Promise<void> {
  const publisher = await client(transport, user);
  try {
    for (const [topic, payload] of Object.entries(messages)) await publisher.publishAsync(topic, payload, { qos: 1, retain: true });
  } finally {
    await publisher.endAsync();
  }
}

/** Clears retained messages (an empty retained payload, always allowed). */
const clear = (transport: Transport, user: User, topics: string[]) => retain(transport, user, Object.fromEntries(topics.map((topic) => [topic, ''])));

/**
 * Sends one retained PUBLISH on a raw connection and expects it refused: no PUBACK/PUBREC, the
 * connection closed, counted as `limit`, and nothing of it at RabbitMQ.
 */
async function expectRefused(transport: Transport, user: User, topic: string, payload: Buffer, limit: string, qos: 0 | 1 | 2 = 1): Promise<void> {
  const before = await refusals(limit);
  const forwardedBefore = forwardedOn(topic).length;
  const connection = await raw(transport, user);
  try {
    connection.send({ cmd: 'publish', topic, payload, qos, messageId: 9, dup: false, retain: true });
    await waitFor(() => connection.closed, 'the bridge to close the connection of the refused publish');
    assert.equal(connection.count('puback') + connection.count('pubrec'), 0, 'not acknowledged');
  } finally {
    connection.destroy();
  }
  assert.equal(await refusals(limit), before + 1, `counted as ${limit}`);
  await marker(transport);
  assert.equal(forwardedOn(topic).length, forwardedBefore, 'not forwarded to RabbitMQ');
}

/** A publish that reaches RabbitMQ after anything the bridge forwarded before it. */
async function marker(transport: Transport): Promise<void> {
  const topic = `public/marker/${uniqueName('m')}`;
  const publisher = await client(transport, 'anonymous');
  try {
    await publisher.publishAsync(topic, 'marker', { qos: 1 });
  } finally {
    await publisher.endAsync();
  }
  await waitFor(() => forwardedOn(topic).length === 1, 'the marker at RabbitMQ');
}

/** The retained messages a new subscriber to `filter` receives, as "topic=payload", sorted. */
async function retainedFor(transport: Transport, filter: string, expected: number): Promise<string[]> {
  const watcher = await client(transport, 'bob');
  const received: string[] = [];
  watcher.on('message', (topic, payload, packet) => {
    if (packet.retain) received.push(`${topic}=${payload.toString()}`);
  });
  try {
    await watcher.subscribeAsync(filter, { qos: 1 });
    await waitFor(() => received.length >= expected, `${expected} retained messages on ${filter}`);
    await delay(300); // and no more than those
    return received.sort();
  } finally {
    await watcher.endAsync();
  }
}

for (const transport of TRANSPORTS) {
  describe(`retained limits over ${transport}`, () => {
    test(`retained limits ${transport} - past the per-user count a retained publish is refused (not acknowledged, forwarded or stored); the other user is unaffected; clearing makes room`, async () => {
      const mine = (name: string) => `devices/alice/${transport}/count/${name}`;
      const bobs = `devices/bob/${transport}/count/b1`;
      assert.equal(await storedCount(), 0);
      try {
        await retain(transport, 'alice', { [mine('r1')]: 'one', [mine('r2')]: 'two', [mine('r3')]: 'three' });
        await expectRefused(transport, 'alice', mine('r4'), Buffer.from('four'), 'retained_messages_per_user');
        assert.deepEqual(await retainedFor(transport, `devices/alice/${transport}/count/#`, 3), [`${mine('r1')}=one`, `${mine('r2')}=two`, `${mine('r3')}=three`]);
        await retain(transport, 'bob', { [bobs]: 'bob is fine' });
        assert.equal(await storedCount(), 4);
        // A retained publish that is refused closes only that connection: alice may still publish, and clear.
        await clear(transport, 'alice', [mine('r1')]);
        await retain(transport, 'alice', { [mine('r4')]: 'four' });
        assert.deepEqual(await retainedFor(transport, `devices/alice/${transport}/count/#`, 3), [`${mine('r2')}=two`, `${mine('r3')}=three`, `${mine('r4')}=four`]);
        await waitFor(() => forwardedOn(mine('r4')).length === 1, 'the admitted r4 at RabbitMQ');
        assert.equal(forwardedOn(mine('r4'))[0]!.content.toString(), 'four');
      } finally {
        await clear(transport, 'alice', [mine('r2'), mine('r3'), mine('r4')]);
        await clear(transport, 'bob', [bobs]);
      }
      assert.equal(await storedCount(), 0);
      assert.equal(await storedBytes(), 0);
    });

    test(`retained limits ${transport} - bytes per user count topic and payload; replacing a message counts the difference; QoS 0 and 2 are refused alike`, async () => {
      const big = `devices/alice/${transport}/bytes/big`;
      const small = `devices/alice/${transport}/bytes/small`;
      const topicBytes = Buffer.byteLength(big);
      try {
        await retain(transport, 'alice', { [big]: Buffer.alloc(2_000, 1) });
        assert.equal(await storedBytes(), topicBytes + 2_000);
        await retain(transport, 'alice', { [big]: Buffer.alloc(MAX_BYTES_PER_USER - topicBytes, 2) }); // exactly the limit
        await expectRefused(transport, 'alice', small, Buffer.from('x'), 'retained_bytes_per_user', 1);
        await expectRefused(transport, 'alice', small, Buffer.from('x'), 'retained_bytes_per_user', 0);
        await expectRefused(transport, 'alice', small, Buffer.from('x'), 'retained_bytes_per_user', 2);
        await expectRefused(transport, 'alice', big, Buffer.alloc(MAX_BYTES_PER_USER - topicBytes + 1), 'retained_bytes_per_user');
        await retain(transport, 'alice', { [big]: Buffer.alloc(100, 3) }); // smaller: always fits
        await retain(transport, 'alice', { [small]: 'now it fits' });
        assert.equal(await storedBytes(), topicBytes + 100 + Buffer.byteLength(small) + 11);
        assert.deepEqual(await retainedFor(transport, `devices/alice/${transport}/bytes/+`, 2), [`${big}=${Buffer.alloc(100, 3).toString()}`, `${small}=now it fits`]);
      } finally {
        await clear(transport, 'alice', [big, small]);
      }
    });

    test(`retained limits ${transport} - anonymous clients count as one user; the total holds over all users`, async () => {
      const anonymous = (name: string) => `public/${transport}/${name}`;
      const alices = [1, 2, 3].map((i) => `devices/alice/${transport}/total/a${i}`);
      const bobs = [1, 2, 3].map((i) => `devices/bob/${transport}/total/b${i}`);
      try {
        await retain(transport, 'anonymous', { [anonymous('x1')]: '1', [anonymous('x2')]: '2' });
        await retain(transport, 'anonymous', { [anonymous('y1')]: '3' }); // another anonymous client: the same user
        await expectRefused(transport, 'anonymous', anonymous('y2'), Buffer.from('4'), 'retained_messages_per_user');
        await retain(transport, 'alice', Object.fromEntries(alices.map((topic) => [topic, 'a'])));
        await retain(transport, 'bob', { [bobs[0]!]: 'b', [bobs[1]!]: 'b' });
        assert.equal(await storedCount(), MAX_TOTAL);
        await expectRefused(transport, 'bob', bobs[2]!, Buffer.from('b'), 'retained_messages');
        await clear(transport, 'alice', [alices[0]!]);
        await retain(transport, 'bob', { [bobs[2]!]: 'b' });
        assert.equal(await storedCount(), MAX_TOTAL);
      } finally {
        await clear(transport, 'anonymous', [anonymous('x1'), anonymous('x2'), anonymous('y1')]);
        await clear(transport, 'alice', alices);
        await clear(transport, 'bob', bobs);
      }
      assert.equal(await storedCount(), 0);
    });

    test(`retained limits ${transport} - many retained publishes at once cannot pass the limit together`, async () => {
      const topics = Array.from({ length: 20 }, (_, i) => `devices/alice/${transport}/burst/${i}`);
      const before = await refusals('retained_messages_per_user');
      const connection = await raw(transport, 'alice');
      try {
        // One write: aedes checks them all before it stores any.
        connection.sendRaw(
          Buffer.concat(
            topics.map((topic, i) => {
              const packet = { cmd: 'publish', topic, payload: Buffer.from(`burst ${i}`), qos: 1, messageId: i + 1, dup: false, retain: true };
              return mqttPacketBytes(packet);
            }),
          ),
        );
        await waitFor(() => connection.closed, 'the bridge to close the connection once the limit refuses one');
      } finally {
        connection.destroy();
      }
      try {
        assert.ok((await refusals('retained_messages_per_user')) > before);
        await waitFor(async () => (await storedCount()) <= MAX_PER_USER && bridge.bridge.pendingMessages === 0, 'the admitted publishes to settle');
        const stored = await storedCount();
        assert.ok(stored <= MAX_PER_USER, `${stored} retained messages stored; at most ${MAX_PER_USER}`);
        assert.ok(topics.filter((topic) => forwardedOn(topic).length > 0).length <= MAX_PER_USER, 'at most the admitted ones reached RabbitMQ');
        // The room of the publishes the closed connection never completed is given back.
        await retain(transport, 'alice', Object.fromEntries(topics.slice(0, MAX_PER_USER).map((topic) => [topic, 'again'])));
      } finally {
        await clear(transport, 'alice', topics);
      }
      assert.equal(await storedCount(), 0);
    });

    test(`retained limits ${transport} - a retained will is checked when it is published: stored within the limit, refused past it`, async () => {
      const wills = [1, 2].map((i) => `devices/alice/${transport}/will/${i}`);
      const held = [1, 2].map((i) => `devices/alice/${transport}/will/held${i}`);
      const dies = async (topic: string) => {
        const device = await RawMqttClient.open(transport, bridge.url(transport));
        const will = { topic, payload: Buffer.from('gone'), qos: 1, retain: true };
        device.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: uniqueName('dying'), keepalive: 60, ...credentials('alice'), will });
        assert.equal(((await device.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
        device.destroy(); // no DISCONNECT: the will is published
      };
      try {
        await retain(transport, 'alice', { [held[0]!]: 'h', [held[1]!]: 'h' });
        await dies(wills[0]!);
        await waitFor(async () => (await storedCount()) === 3, 'the retained will to be stored');
        await waitFor(() => forwardedOn(wills[0]!).length === 1, 'the will at RabbitMQ');
        const before = await refusals('retained_messages_per_user');
        await dies(wills[1]!);
        await waitFor(async () => (await refusals('retained_messages_per_user')) === before + 1, 'the second will to be refused');
        assert.equal(await storedCount(), 3);
        await marker(transport);
        assert.deepEqual(forwardedOn(wills[1]!), [], 'a refused will is not forwarded');
        assert.deepEqual(await retainedFor(transport, `devices/alice/${transport}/will/+`, 3), [`${wills[0]}=gone`, `${held[0]}=h`, `${held[1]}=h`]);
      } finally {
        await clear(transport, 'alice', [...wills, ...held]);
      }
    });
  });
}

/** Publishes on AMQP as an enterprise system would, waiting for RabbitMQ's confirm. */
const command = (routingKey: string, payload: string) => publishConfirmed(commands, routingKey, payload, { persistent: true });

test('retained limits - a downlink retained message past the total is dead-lettered (not requeued), counted, and not stored; with room it is stored', async () => {
  const fillers = Array.from({ length: MAX_TOTAL }, (_, i) => `devices/${i % 2 === 0 ? 'alice' : 'bob'}/downlink/f${i}`);
  const rejected = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'config', reason: 'retained_limit' });
  const delivered = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_messages_total', { rule: 'config' });
  try {
    await retain('tcp', 'alice', Object.fromEntries(fillers.filter((topic) => topic.includes('alice')).slice(0, MAX_PER_USER).map((topic) => [topic, 'f'])));
    await retain('tcp', 'bob', Object.fromEntries(fillers.filter((topic) => topic.includes('bob')).slice(0, MAX_PER_USER).map((topic) => [topic, 'f'])));
    await retain('tcp', 'anonymous', { 'public/downlink/f1': 'f', 'public/downlink/f2': 'f' });
    assert.equal(await storedCount(), MAX_TOTAL);
    const refusedBefore = await refusals('retained_messages');
    const deadBefore = deadLettered.messages.length;
    await command('config.d1', 'v1');
    await deadLettered.waitForCount(deadBefore + 1);
    assert.equal(deadLettered.messages[deadBefore]!.content.toString(), 'v1');
    assert.equal(await rejected(), 1);
    assert.equal(await refusals('retained_messages'), refusedBefore + 1);
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_requeued_total', { rule: 'config' }), 0);
    assert.equal(await storedCount(), MAX_TOTAL);
    assert.equal((await withChannel((channel) => channel.checkQueue(downlinkQueue))).messageCount, 0, 'not requeued');

    await clear('tcp', 'anonymous', ['public/downlink/f1']);
    const deliveredBefore = await delivered();
    await command('config.d1', 'v2');
    await waitFor(async () => (await delivered()) === deliveredBefore + 1, 'the second command to be published to MQTT');
    assert.deepEqual(await retainedFor('tcp', 'devices/d1/config', 1), ['devices/d1/config=v2']);
    assert.equal(await storedCount(), MAX_TOTAL);
  } finally {
    await clear('tcp', 'alice', fillers.filter((topic) => topic.includes('alice')));
    await clear('tcp', 'bob', fillers.filter((topic) => topic.includes('bob')));
    await clear('tcp', 'anonymous', ['public/downlink/f1', 'public/downlink/f2']);
  }
  await command('config.d1', ''); // the downlink clears its own message
  await waitFor(async () => (await storedCount()) === 0, 'every retained message to be cleared');
});

function mqttPacketBytes(packet: Record<string, unknown>): Buffer {
  return mqttPacket.generate(packet as unknown as mqttPacket.Packet);
}

test('retained limits - who published each retained message survives a restart with mqtt.sessionFile: the per-user limit still holds', async () => {
  const sessionFile = join(mkdtempSync(join(tmpdir(), 'bridge-retained-')), 'sessions.json');
  const users = [{ username: 'alice', password: await hashPassword(PASSWORDS.alice) }];
  const settings = {
    mqtt: { listeners: [{ type: 'tcp' as const, host: '127.0.0.1', port: 0 }], sessionFile, maxRetainedMessagesPerUser: 2 },
    auth: { users },
    amqp: { exchanges: [transientExchange(uplink)] },
    uplink: [{ name: 'all', topic: '#', exchange: uplink, routingKey: '{#}' }],
  };
  const topics = ['devices/alice/restart/1', 'devices/alice/restart/2', 'devices/alice/restart/3'];
  let running: TestBridge | null = await startTestBridge(settings);
  const publish = async (topic: string) => {
    const publisher = await connectClient(running!.url('tcp'), { clientId: uniqueName('alice'), ...credentials('alice') });
    try {
      await publisher.publishAsync(topic, 'kept', { qos: 1, retain: true });
    } finally {
      await publisher.endAsync();
    }
  };
  try {
    await publish(topics[0]!);
    await publish(topics[1]!);
    await running.stop();
    running = await startTestBridge(settings);
    assert.equal(await running.bridge.metrics.value('mqtt_amqp_bridge_retained_messages'), 2);
    assert.equal(await running.bridge.metrics.value('mqtt_amqp_bridge_retained_bytes'), 2 * (Buffer.byteLength(topics[0]!) + 4));
    const device = await RawMqttClient.open('tcp', running.url('tcp'));
    try {
      device.sendConnect({ clientId: uniqueName('alice'), ...credentials('alice') });
      await device.next('connack');
      device.send({ cmd: 'publish', topic: topics[2], payload: Buffer.from('third'), qos: 1, messageId: 1, dup: false, retain: true });
      await waitFor(() => device.closed, 'the third retained message of alice to be refused');
      assert.equal(device.count('puback'), 0);
    } finally {
      device.destroy();
    }
    assert.equal(await running.bridge.metrics.value('mqtt_amqp_bridge_limits_refused_total', { limit: 'retained_messages_per_user' }), 1);
  } finally {
    await running?.stop();
  }
});
