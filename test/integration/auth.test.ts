import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/auth/passwords.js';
import { loadConfigText } from '../../src/config/load.js';
import { delay, deleteExchanges, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import { captureLogs } from '../helpers/log-capture.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

const exchange = uniqueName('auth');
const PASSWORDS = { 'sensor-1': 'correct horse 1', 'sensor-2': 'battery staple 2', ops: 'ops-secret-3', admin: 'admin-secret-4' };
const logs = captureLogs('info');
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  const users = await Promise.all(Object.entries(PASSWORDS).map(async ([username, password]) => ({ username, password: await hashPassword(password) })));
  // One user comes from a users file, as ops would keep them: loading a configuration that names it adds its users to auth.users.
  const usersFile = join(mkdtempSync(join(tmpdir(), 'bridge-users-')), 'users.yaml');
  writeFileSync(usersFile, `users:\n  - { username: admin, password: "${users.pop()!.password}" }\n`);
  const fromFile = loadConfigText(`auth: { usersFile: "${usersFile}" }\n`, 'bridge.yaml', { env: {} }).auth!.users;
  bridge = await startTestBridge(
    {
      ...forwardAllTo(exchange),
      auth: { users: [...users, ...fromFile] },
      acl: [
        { allow: 'publish', topic: 'devices/{username}/#' },
        { allow: 'subscribe', topic: 'devices/{username}/commands/#' },
        { allow: ['publish', 'subscribe'], topic: 'dashboards/#', users: ['ops'] },
        { deny: 'subscribe', topic: 'devices/+/secrets/#', users: ['admin'] },
        { allow: 'subscribe', topic: '#', users: ['admin'] },
      ],
    },
    { logger: logs.logger },
  );
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await deleteExchanges(exchange);
});

async function connack(transport: Transport, options: { username?: string; password?: string; will?: { topic: string } } = {}): Promise<number> {
  const client = await RawMqttClient.open(transport, bridge.url(transport));
  try {
    client.sendConnect({ clientId: uniqueName('c'), ...options, will: options.will && { topic: options.will.topic, payload: Buffer.from('bye'), qos: 1 } });
    return ((await client.next('connack', 20_000)) as unknown as { returnCode: number }).returnCode;
  } finally {
    client.destroy();
  }
}

/** The return codes of one SUBSCRIBE with these filters (mqtt.js rejects a SUBACK with any 0x80, so raw packets). */
async function granted(transport: Transport, username: keyof typeof PASSWORDS | null, filters: string[], qos: 0 | 1 | 2): Promise<number[]> {
  const client = await RawMqttClient.open(transport, bridge.url(transport));
  try {
    client.sendConnect({ clientId: uniqueName('sub'), ...(username ? { username, password: PASSWORDS[username] } : {}) });
    assert.equal(((await client.next('connack', 20_000)) as unknown as { returnCode: number }).returnCode, 0);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: filters.map((topic) => ({ topic, qos })) });
    return ((await client.next('suback')) as unknown as { granted: number[] }).granted;
  } finally {
    client.destroy();
  }
}

const login = (username: keyof typeof PASSWORDS, transport: Transport = 'tcp', clientId?: string) =>
  connectClient(bridge.url(transport), { username, password: PASSWORDS[username], clientId: clientId ?? uniqueName(username) });

for (const transport of TRANSPORTS) {
  describe(`authentication over ${transport}`, () => {
    test(`auth ${transport} - a good password connects; a bad one or an unknown user gets 4; no credentials get 5`, async () => {
      assert.equal(await connack(transport, { username: 'sensor-1', password: PASSWORDS['sensor-1'] }), 0);
      assert.equal(await connack(transport, { username: 'admin', password: PASSWORDS.admin }), 0, 'a user from the users file');
      assert.equal(await connack(transport, { username: 'sensor-1', password: 'wrong' }), 4);
      assert.equal(await connack(transport, { username: 'nobody', password: 'whatever' }), 4);
      assert.equal(await connack(transport, { username: 'sensor-1' }), 4, 'a username without a password');
      assert.equal(await connack(transport, {}), 5, 'anonymous');
    });

    test(`auth ${transport} - a will the ACL would not let the client publish is refused at CONNECT (5)`, async () => {
      assert.equal(await connack(transport, { username: 'sensor-1', password: PASSWORDS['sensor-1'], will: { topic: 'devices/sensor-2/status' } }), 5);
      assert.equal(await connack(transport, { username: 'sensor-1', password: PASSWORDS['sensor-1'], will: { topic: 'devices/sensor-1/status' } }), 0);
    });

    test(`acl ${transport} - a device publishes and subscribes only where the ACL lets it`, async () => {
      const sensor = await login('sensor-1', transport);
      const start = consumer.messages.length;
      try {
        await sensor.publishAsync('devices/sensor-1/telemetry', 'mine', { qos: 1 });
        assert.deepEqual(
          await granted(transport, 'sensor-1', ['devices/sensor-1/commands/#', 'devices/sensor-2/commands/#', 'devices/+/commands/#', 'dashboards/#', 'devices/sensor-1/#'], 1),
          [1, 128, 128, 128, 128],
        );
        const [message] = (await consumer.waitForCount(start + 1)).slice(start);
        assert.equal(message!.fields.routingKey, 'devices.sensor-1.telemetry');
      } finally {
        await sensor.endAsync();
      }
    });

    test(`acl ${transport} - a denied PUBLISH reaches neither AMQP nor other clients, is counted, and disconnects the device`, async () => {
      const admin = await login('admin', transport);
      const seen: string[] = [];
      admin.on('message', (topic) => seen.push(topic));
      await admin.subscribeAsync('devices/+/telemetry', { qos: 1 });
      const sensor = await RawMqttClient.open(transport, bridge.url(transport));
      const deniedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'publish' });
      const start = consumer.messages.length;
      try {
        sensor.sendConnect({ clientId: uniqueName('raw-sensor'), username: 'sensor-1', password: PASSWORDS['sensor-1'] });
        assert.equal(((await sensor.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
        sensor.send({ cmd: 'publish', topic: 'devices/sensor-2/telemetry', payload: Buffer.from('spoofed'), qos: 1, messageId: 1, dup: false, retain: false });
        await waitFor(() => sensor.closed, 'the device to be disconnected');
        assert.equal(sensor.count('puback'), 0);
        await delay(300);
        assert.deepEqual(seen, [], 'no other client got it');
        assert.equal(consumer.messages.length, start, 'nothing reached RabbitMQ');
        assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'publish' }), deniedBefore + 1);
      } finally {
        sensor.destroy();
        await admin.endAsync();
      }
    });

    test(`acl ${transport} - per-user entries: ops may use dashboards/#; a deny entry before an allow wins`, async () => {
      const ops = await login('ops', transport);
      const admin = await login('admin', transport);
      try {
        assert.deepEqual(await granted(transport, 'ops', ['dashboards/#'], 0), [0]);
        await ops.publishAsync('dashboards/overview', 'ok', { qos: 1 });
        assert.deepEqual(await granted(transport, 'admin', ['devices/d1/secrets/key', 'devices/d1/state'], 0), [128, 0]);
      } finally {
        await ops.endAsync();
        await admin.endAsync();
      }
    });

    test(`acl ${transport} - a filter broader than a deny entry (admin's devices/#) is granted, and the denied topics never reach it`, async () => {
      const admin = await RawMqttClient.open(transport, bridge.url(transport));
      const sensor = await login('sensor-1', transport);
      try {
        admin.sendConnect({ clientId: uniqueName('admin'), username: 'admin', password: PASSWORDS.admin });
        assert.equal(((await admin.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
        admin.send({ cmd: 'subscribe', messageId: 1, subscriptions: ['devices/#', '#', 'devices/+/+/key', 'devices/sensor-1/state', 'devices/+/secrets/key'].map((topic) => ({ topic, qos: 1 })) });
        assert.deepEqual(((await admin.next('suback')) as unknown as { granted: number[] }).granted, [1, 1, 1, 1, 128], 'only the filter inside the deny is refused');
        const deniedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'deliver' });
        await sensor.publishAsync('devices/sensor-1/secrets/key', 'hunter2', { qos: 1 });
        await sensor.publishAsync('devices/sensor-1/state', 'on', { qos: 1 });
        await sensor.publishAsync('devices/sensor-1/state', 'done', { qos: 1 });
        const delivered = [(await admin.next('publish')) as unknown as { topic: string; payload: Buffer }, (await admin.next('publish')) as unknown as { topic: string; payload: Buffer }];
        assert.deepEqual(
          delivered.map((packet) => `${packet.topic} ${packet.payload.toString()}`),
          ['devices/sensor-1/state on', 'devices/sensor-1/state done'],
          'the secret, published first, was not delivered; the state arrived once, though three of the filters match it',
        );
        assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'deliver' }), deniedBefore + 1);
      } finally {
        admin.destroy();
        await sensor.endAsync();
      }
    });
  });
}

test('auth - repeated failures from one address are answered more and more slowly; a success resets it', async () => {
  const timed = async (password: string) => {
    const started = Date.now();
    const code = await connack('tcp', { username: 'sensor-2', password });
    return { code, ms: Date.now() - started };
  };
  await timed(PASSWORDS['sensor-2']); // a clean slate for this address
  const first = await timed('bad-1');
  const second = await timed('bad-2');
  const third = await timed('bad-3');
  assert.deepEqual([first.code, second.code, third.code], [4, 4, 4]);
  assert.ok(second.ms >= 240, `the second failure waited ${second.ms} ms`);
  assert.ok(third.ms >= 490, `the third failure waited ${third.ms} ms`);
  const good = await timed(PASSWORDS['sensor-2']);
  assert.equal(good.code, 0);
  const after = await timed(PASSWORDS['sensor-2']);
  assert.ok(after.ms < 240, `after a success no delay (${after.ms} ms)`);
});

test('auth - refused logins are logged and counted, and no password ever appears in the logs', async () => {
  const refused = await bridge.bridge.metrics.value('mqtt_amqp_bridge_logins_refused_total', { return_code: '4' });
  assert.ok(refused >= 6, `bad credentials counted (${refused})`);
  assert.ok(logs.lines.some((line) => line.msg === 'login refused' && line.reason === 'bad username or password'));
  const text = JSON.stringify(logs.lines);
  for (const password of [...Object.values(PASSWORDS), 'bad-1', 'wrong']) assert.ok(!text.includes(password), `"${password}" is not in the logs`);
});

test('acl - onDeniedPublish: drop acknowledges a denied publish and delivers it nowhere', async () => {
  const dropping = await startTestBridge({
    ...forwardAllTo(exchange),
    auth: { anonymous: true },
    acl: { onDeniedPublish: 'drop', rules: [{ allow: ['publish', 'subscribe'], topic: 'open/#' }] },
  });
  const client = await connectClient(dropping.url('tcp'));
  const seen: string[] = [];
  client.on('message', (topic) => seen.push(topic));
  const start = consumer.messages.length;
  const probe = await RawMqttClient.open('tcp', dropping.url('tcp'));
  try {
    await probe.connect(uniqueName('probe'));
    probe.send({ cmd: 'subscribe', messageId: 1, subscriptions: ['$bridge/#', '#', 'open/x'].map((topic) => ({ topic, qos: 1 })) });
    assert.deepEqual(((await probe.next('suback')) as unknown as { granted: number[] }).granted, [128, 128, 1]);
    await client.subscribeAsync('open/#', { qos: 1 });
    await client.publishAsync('closed/topic', 'dropped', { qos: 1 });
    await client.publishAsync('closed/topic', 'dropped too', { qos: 2 });
    await client.publishAsync('open/topic', 'fine', { qos: 1 });
    await consumer.waitForCount(start + 1);
    await waitFor(() => seen.includes('open/topic'), 'the allowed publish at the local subscriber');
    await delay(300);
    assert.equal(client.connected, true);
    assert.deepEqual(consumer.messages.slice(start).map((m) => m.fields.routingKey), ['open.topic']);
    assert.deepEqual(seen, ['open/topic']);
    assert.equal(await dropping.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'publish' }), 2);
  } finally {
    probe.destroy();
    await client.endAsync();
    await dropping.stop();
  }
});
