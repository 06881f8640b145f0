import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { hashPassword } from '../../src/auth/passwords.js';
import { delay, publishConfirmed, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { startTestBridge, transientExchange, type TestBridge, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import { connectBytes, mqttString, packetBytes, type ConnectBytesOptions } from '../helpers/mqtt-bytes.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

// Two users as in the probe that found these gaps: each may publish under devices/{username}/
// and subscribe to devices/{username}/commands/; commands come from RabbitMQ.
const PASSWORDS = { alice: 'alice-secret-1', bob: 'bob-secret-2' } as const;
type User = keyof typeof PASSWORDS;
const uplinkExchange = uniqueName('proto-up');
const commands = uniqueName('proto-commands');
const commandQueue = uniqueName('proto-commands-q');
const MAX_TOPIC_LEVELS = 6;
let bridge: TestBridge;
let uplinked: TestConsumer;

before(async () => {
  const users = await Promise.all(Object.entries(PASSWORDS).map(async ([username, password]) => ({ username, password: await hashPassword(password) })));
  bridge = await startTestBridge({
    mqtt: { maxTopicLevels: MAX_TOPIC_LEVELS, maxTopicBytes: 200 },
    amqp: { exchanges: [transientExchange(uplinkExchange), transientExchange(commands)] },
    auth: { users },
    acl: [
      { allow: 'publish', topic: 'devices/{username}/#' },
      { allow: 'subscribe', topic: 'devices/{username}/commands/#' },
    ],
    uplink: [{ name: 'all', topic: '#', exchange: uplinkExchange, routingKey: '{#}' }],
    downlink: [{ name: 'commands', exchange: commands, routingKey: '{deviceId}.#', topic: 'devices/{deviceId}/commands/{#}', qos: 1, queueName: commandQueue }],
  });
  uplinked = await TestConsumer.create([{ exchange: uplinkExchange, key: '#' }]);
});

after(async () => {
  await uplinked?.close();
  await bridge?.stop();
  await withChannel(async (channel) => {
    await channel.deleteQueue(commandQueue);
    for (const exchange of [uplinkExchange, commands]) await channel.deleteExchange(exchange);
  }).catch(() => {});
});

const counted = (limit: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_limits_refused_total', { limit });
const loginsRefused = (returnCode: number) => bridge.bridge.metrics.value('mqtt_amqp_bridge_logins_refused_total', { return_code: String(returnCode) });
const credentials = (user: User) => ({ username: user, password: PASSWORDS[user] });
const topicsOn = (client: RawMqttClient) => client.received.filter((packet) => packet.cmd === 'publish').map((packet) => (packet).topic);
const uplinkedTopics = () => uplinked.messages.map((message) => String(message.properties.headers?.['x-mqtt-topic']));

/** Sends these bytes on a new connection; resolves with the CONNACK return code, or null when the connection closed without one. */
async function connackOrClose(transport: Transport, bytes: Buffer): Promise<{ returnCode: number | null; client: RawMqttClient }> {
  const client = await RawMqttClient.open(transport, bridge.url(transport));
  client.sendRaw(bytes);
  const connack = (await client.nextOrClose('connack', 20_000)) as mqttPacket.IConnackPacket | null;
  return { returnCode: connack ? connack.returnCode! : null, client };
}

/** A raw client logged in as `user` (CONNACK 0), with an optional will. */
async function loggedIn(transport: Transport, user: User, will?: ConnectBytesOptions['will']): Promise<RawMqttClient> {
  const client = await RawMqttClient.open(transport, bridge.url(transport));
  client.sendRaw(connectBytes({ clientId: uniqueName(user), ...credentials(user), will }));
  assert.equal(((await client.next('connack', 20_000)) as mqttPacket.IConnackPacket).returnCode, 0);
  return client;
}

async function subscribe(client: RawMqttClient, messageId: number, filters: Array<[string, number]>): Promise<number[]> {
  client.send({ cmd: 'subscribe', messageId, subscriptions: filters.map(([topic, qos]) => ({ topic, qos })) });
  const suback = (await client.next('suback')) as mqttPacket.ISubackPacket;
  assert.equal(suback.messageId, messageId);
  return suback.granted as number[];
}

/** Publishes a command on AMQP, as an enterprise system would. */
const command = (routingKey: string, payload: string) => publishConfirmed(commands, routingKey, payload, { persistent: true });

for (const transport of TRANSPORTS) {
  describe(`protocol conformance over ${transport}`, () => {
    test(`protocol ${transport} - a will topic with a wildcard, empty, with U+0000, not UTF-8 or past a limit: closed without CONNACK, never published, counted`, async () => {
      const watcher = await loggedIn(transport, 'alice');
      assert.deepEqual(await subscribe(watcher, 1, [['devices/alice/commands/#', 1]]), [1]);
      const invalidBefore = await counted('invalid_topic');
      const levelsBefore = await counted('topic_levels');
      const violationsBefore = await counted('protocol_violation');
      const wills: Array<[string | Buffer, number]> = [
        ['devices/alice/commands/+', 3],
        ['devices/alice/commands/#', 3],
        ['devices/alice/+/x', 3],
        ['', 3],
        ['devices/alice/commands/a\u0000b', 3],
        [Buffer.concat([Buffer.from('devices/alice/commands/'), Buffer.from([0xc3, 0x28])]), 3],
        ['devices/alice/commands/a/b/c/d', 4], // 7 levels
        ['devices/alice/commands/will', 5], // QoS 3
      ];
      for (const [topic, kind] of wills) {
        const qos = kind === 5 ? 3 : 1;
        const { returnCode, client } = await connackOrClose(transport, connectBytes({ clientId: uniqueName('will'), ...credentials('alice'), will: { topic, payload: Buffer.from('refused will'), qos, retain: true } }));
        assert.equal(returnCode, null, `will topic ${JSON.stringify(topic.toString())} gets no CONNACK`);
        assert.ok(client.closed);
      }
      assert.equal(await counted('invalid_topic'), invalidBefore + 6);
      assert.equal(await counted('topic_levels'), levelsBefore + 1);
      assert.equal(await counted('protocol_violation'), violationsBefore + 1);
      // The same will with a topic name is published when its client goes: the path the refused ones would have taken.
      const control = `devices/alice/commands/gone-${transport}`;
      const dying = await loggedIn(transport, 'alice', { topic: control, payload: Buffer.from('control will'), qos: 1, retain: true });
      dying.destroy();
      await waitFor(() => topicsOn(watcher).includes(control), 'the control will at the subscriber');
      await waitFor(() => uplinkedTopics().includes(control), 'the control will on RabbitMQ');
      assert.deepEqual(topicsOn(watcher), [control]);
      assert.equal(uplinked.messages.filter((message) => message.content.toString() === 'refused will').length, 0, 'no refused will on RabbitMQ');
      // And nothing with a wildcard was retained: a new subscriber gets the retained control wills only.
      const late = await loggedIn(transport, 'alice');
      await subscribe(late, 1, [['devices/alice/commands/#', 1]]);
      await waitFor(() => topicsOn(late).includes(control), 'the retained control will');
      await delay(200);
      assert.deepEqual(topicsOn(late), [control]);
      // A device can clear its retained will (it could not clear one with a wildcard in its topic).
      late.send({ cmd: 'publish', topic: control, payload: Buffer.alloc(0), qos: 1, messageId: 2, retain: true, dup: false });
      await late.next('puback');
      watcher.destroy();
      late.destroy();
    });

    test(`protocol ${transport} - a password without a user name is closed without CONNACK [MQTT-3.1.2-22]`, async () => {
      const before = await counted('protocol_violation');
      const refusedBefore = await loginsRefused(5);
      const { returnCode } = await connackOrClose(transport, connectBytes({ clientId: uniqueName('pw'), password: PASSWORDS.alice }));
      assert.equal(returnCode, null);
      assert.equal(await counted('protocol_violation'), before + 1);
      assert.equal(await loginsRefused(5), refusedBefore, 'no CONNACK 5 any more');
    });

    test(`protocol ${transport} - MQIsdp goes with level 3 and MQTT with level 4: another pairing gets CONNACK 1 and is closed`, async () => {
      const before = await counted('protocol_violation');
      const refusedBefore = await loginsRefused(1);
      for (const [protocolName, level] of [['MQIsdp', 4], ['MQTT', 3]] as const) {
        const { returnCode, client } = await connackOrClose(transport, connectBytes({ protocolName, level, clientId: uniqueName('level'), ...credentials('alice') }));
        assert.equal(returnCode, 1, `${protocolName} level ${level}`);
        await waitFor(() => client.closed, 'the connection to close after CONNACK 1');
      }
      assert.equal(await counted('protocol_violation'), before + 2);
      assert.equal(await loginsRefused(1), refusedBefore + 2);
      // MQTT 3.1 as it should be is served.
      const old = await RawMqttClient.open(transport, bridge.url(transport));
      old.sendRaw(connectBytes({ protocolName: 'MQIsdp', level: 3, clientId: uniqueName('v31'), ...credentials('alice') }));
      assert.equal(((await old.next('connack')) as mqttPacket.IConnackPacket).returnCode, 0);
      old.send({ cmd: 'publish', topic: `devices/alice/v31-${transport}`, payload: Buffer.from('3.1'), qos: 1, messageId: 1, retain: false, dup: false });
      await old.next('puback');
      await waitFor(() => uplinkedTopics().includes(`devices/alice/v31-${transport}`), 'the MQTT 3.1 publish on RabbitMQ');
      old.destroy();
    });

    test(`protocol ${transport} - a CONNECT with bytes after its fields is malformed: closed without CONNACK, and a PUBLISH hidden there goes nowhere`, async () => {
      const before = await counted('protocol_violation');
      const hidden = `devices/alice/hidden-${transport}`;
      const smuggled = mqttPacket.generate({ cmd: 'publish', topic: hidden, payload: Buffer.from('smuggled'), qos: 0, retain: false, dup: false });
      const tooBigBefore = await counted('connect_size');
      // 1 MB after the fields makes the CONNECT larger than mqtt.maxConnectBytes: refused from its header first.
      for (const trailing of [Buffer.from([0]), Buffer.concat([smuggled, Buffer.alloc(10_000)]), Buffer.concat([smuggled, Buffer.alloc(1 << 20)])]) {
        const { returnCode, client } = await connackOrClose(transport, connectBytes({ clientId: uniqueName('long'), ...credentials('alice'), trailing }));
        assert.equal(returnCode, null, `${trailing.length} bytes after the fields`);
        assert.equal(client.count('puback') + client.count('publish'), 0);
      }
      assert.equal(await counted('protocol_violation'), before + 2);
      assert.equal(await counted('connect_size'), tooBigBefore + 1);
      const good = await loggedIn(transport, 'alice');
      good.send({ cmd: 'publish', topic: `devices/alice/after-${transport}`, payload: Buffer.from('ok'), qos: 1, messageId: 1, retain: false, dup: false });
      await waitFor(() => uplinkedTopics().includes(`devices/alice/after-${transport}`), 'a later publish on RabbitMQ');
      assert.equal(uplinkedTopics().includes(hidden), false);
      good.destroy();
    });

    test(`protocol ${transport} - a SUBSCRIBE that repeats a filter gets one return code per filter, in order, and holds the last QoS [MQTT-3.9.3-1] [MQTT-3.8.4-4]`, async () => {
      const device = await loggedIn(transport, 'alice');
      const publisher = await loggedIn(transport, 'alice');
      try {
        assert.deepEqual(await subscribe(device, 1, [['devices/alice/commands/#', 1], ['#', 0], ['devices/alice/commands/#', 2]]), [1, 0x80, 2]);
        publisher.send({ cmd: 'publish', topic: `devices/alice/commands/q2-${transport}`, payload: Buffer.from('at 2'), qos: 2, messageId: 1, retain: false, dup: false });
        await publisher.next('pubrec');
        publisher.send({ cmd: 'pubrel', messageId: 1 });
        const atTwo = (await device.next('publish')) as mqttPacket.IPublishPacket;
        assert.deepEqual([atTwo.topic, atTwo.qos], [`devices/alice/commands/q2-${transport}`, 2], 'held at QoS 2');
        device.send({ cmd: 'pubrec', messageId: atTwo.messageId });
        await device.next('pubrel');
        device.send({ cmd: 'pubcomp', messageId: atTwo.messageId });

        assert.deepEqual(await subscribe(device, 2, [['devices/alice/commands/#', 2], ['devices/bob/commands/#', 1], ['devices/alice/commands/#', 1], ['devices/bob/commands/#', 2], ['devices/alice/commands/#', 0]]), [2, 0x80, 1, 0x80, 0]);
        await command(`alice.door.${transport}`, 'open');
        const cmd = (await device.next('publish')) as mqttPacket.IPublishPacket;
        assert.deepEqual([cmd.topic, cmd.qos, cmd.payload.toString()], [`devices/alice/commands/door/${transport}`, 0, 'open'], 'the command arrives once, at the QoS held last');
        // Nothing of bob's, though `#` and bob's filters were asked for.
        const bob = await loggedIn(transport, 'bob');
        bob.send({ cmd: 'publish', topic: `devices/bob/commands/x-${transport}`, payload: Buffer.from('bob'), qos: 1, messageId: 1, retain: false, dup: false });
        await bob.next('puback');
        bob.destroy();
        await command(`alice.last.${transport}`, 'last');
        await waitFor(() => topicsOn(device).includes(`devices/alice/commands/last/${transport}`), 'the last command');
        assert.deepEqual(topicsOn(device), [`devices/alice/commands/last/${transport}`]);
        // Without a repeated filter nothing changes.
        assert.deepEqual(await subscribe(device, 3, [['devices/alice/commands/a', 1], ['devices/bob/commands/#', 2]]), [1, 0x80]);
      } finally {
        device.destroy();
        publisher.destroy();
      }
    });

    test(`protocol ${transport} - SUBSCRIBE, UNSUBSCRIBE and PUBLISH that MQTT forbids close the connection, are counted, and the will is published [MQTT-3.1.2-8]`, async () => {
      const watcher = await loggedIn(transport, 'alice');
      await subscribe(watcher, 1, [['devices/alice/commands/#', 1]]);
      const subscribeWith = (messageId: number, filters: Array<[Buffer, number]>) =>
        packetBytes(0x82, Buffer.concat([Buffer.from([messageId >> 8, messageId & 0xff]), ...filters.map(([filter, qos]) => Buffer.concat([mqttString(filter), Buffer.from([qos])]))]));
      const unsubscribeWith = (messageId: number, filters: Buffer[]) => packetBytes(0xa2, Buffer.concat([Buffer.from([messageId >> 8, messageId & 0xff]), ...filters.map(mqttString)]));
      const publishWith = (firstByte: number, topic: string, messageId: number) => packetBytes(firstByte, Buffer.concat([mqttString(topic), Buffer.from([messageId >> 8, messageId & 0xff]), Buffer.from('forbidden')]));
      const cases: Array<[string, Buffer, 'protocol_violation' | 'invalid_topic']> = [
        ['SUBSCRIBE with packet identifier 0', subscribeWith(0, [[Buffer.from('devices/alice/commands/a'), 1]]), 'protocol_violation'],
        ['SUBSCRIBE without a filter', subscribeWith(1, []), 'protocol_violation'],
        ['SUBSCRIBE of a+', subscribeWith(1, [[Buffer.from('devices/alice/commands/a+'), 1]]), 'invalid_topic'],
        ['SUBSCRIBE of #a', subscribeWith(1, [[Buffer.from('devices/alice/commands/#a'), 1]]), 'invalid_topic'],
        ['SUBSCRIBE of a filter with U+0000', subscribeWith(1, [[Buffer.from('devices/alice/commands/\u0000'), 1]]), 'invalid_topic'],
        ['SUBSCRIBE of a filter that is not UTF-8', subscribeWith(1, [[Buffer.from([0x64, 0xff]), 1]]), 'invalid_topic'],
        ['SUBSCRIBE with QoS 3', subscribeWith(1, [[Buffer.from('devices/alice/commands/a'), 3]]), 'protocol_violation'],
        ['SUBSCRIBE with reserved flags 0000', Buffer.concat([Buffer.from([0x80]), subscribeWith(1, [[Buffer.from('devices/alice/commands/a'), 1]]).subarray(1)]), 'protocol_violation'],
        ['UNSUBSCRIBE with packet identifier 0', unsubscribeWith(0, [Buffer.from('a')]), 'protocol_violation'],
        ['UNSUBSCRIBE without a filter', unsubscribeWith(1, []), 'protocol_violation'],
        ['UNSUBSCRIBE of a/#/b', unsubscribeWith(1, [Buffer.from('a/#/b')]), 'invalid_topic'],
        ['PUBLISH QoS 1 with packet identifier 0', publishWith(0x32, `devices/alice/zero-${transport}`, 0), 'protocol_violation'],
        ['PUBLISH QoS 3', publishWith(0x36, `devices/alice/qos3-${transport}`, 1), 'protocol_violation'],
        ['PUBLISH to a+b', publishWith(0x32, 'devices/alice/a+b', 1), 'invalid_topic'],
        ['a second CONNECT', connectBytes({ clientId: uniqueName('again'), ...credentials('alice') }), 'protocol_violation'],
        ['PUBACK with a remaining length of 3', Buffer.from([0x40, 3, 0, 1, 0]), 'protocol_violation'],
        ['a SUBACK from a client', Buffer.from([0x90, 3, 0, 1, 0]), 'protocol_violation'],
      ];
      for (const [index, [name, bytes, limit]] of cases.entries()) {
        const will = `devices/alice/commands/violated-${transport}-${index}`;
        const client = await loggedIn(transport, 'alice', { topic: will, payload: Buffer.from(name), qos: 1 });
        const before = await counted(limit);
        client.sendRaw(bytes);
        await waitFor(() => client.closed, `${name} to close the connection`);
        assert.equal(client.count('suback') + client.count('unsuback') + client.count('puback') + client.count('connack'), 0, name);
        assert.equal(await counted(limit), before + 1, `${name} counted as ${limit}`);
        await waitFor(() => topicsOn(watcher).includes(will), `the will of the client closed for ${name}`);
      }
      await delay(200);
      assert.equal(uplinkedTopics().some((topic) => topic.includes(`zero-${transport}`) || topic.includes(`qos3-${transport}`) || topic.includes('+')), false);
      watcher.destroy();
    });
  });
}

test('protocol - an MQTT 5 CONNECT is answered CONNACK 1 by aedes and is not a protocol violation', async () => {
  const before = await counted('protocol_violation');
  const v5 = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: uniqueName('v5'), keepalive: 60 }, { protocolVersion: 5 });
  const { returnCode } = await connackOrClose('tcp', v5);
  assert.equal(returnCode, 1);
  assert.equal(await counted('protocol_violation'), before);
});

test('protocol - nothing with a wildcard, U+0000 or U+FFFD in its topic reached RabbitMQ', () => {
  assert.ok(uplinked.messages.length > 0);
  for (const topic of uplinkedTopics()) assert.ok(!['+', '#', '\u0000', '\ufffd'].some((character) => topic.includes(character)), topic);
});
