import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import amqplib from 'amqplib';
import mqtt from 'mqtt';
import { REAL_PARTS } from '../../src/bridge-parts.js';
import { MqttServer } from '../../src/mqtt/server.js';
import { AMQP_URL, delay, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, transientExchange, type TestBridge } from '../helpers/bridge.js';
import { queueDepth } from '../helpers/rabbitmqctl.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';
import { startOwnRedis, type OwnRedis } from '../helpers/redis.js';

// Redis down, restarted and hanging under a bridge, on a redis-server of the test's own (with an
// AOF written on every write, as docs/persistence.md asks of production): nothing acknowledged is
// lost and nothing crashes; what cannot be stored is not acknowledged; a device's own publish
// without retain still reaches RabbitMQ; the state says why it is not ready; all recovers.

const prefix = uniqueName('trouble');
const up = uniqueName('trouble-up');
const commands = uniqueName('trouble-commands');
const queue = uniqueName('trouble-queue');

let redis: OwnRedis;
let bridge: TestBridge;
let server: MqttServer;
let forwarded: TestConsumer;

before(async () => {
  redis = await startOwnRedis({ appendonly: true });
  bridge = await startTestBridge(
    {
      mqtt: { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], persistence: { type: 'redis', url: redis.url, keyPrefix: `${prefix}:` } },
      amqp: { exchanges: [transientExchange(up), transientExchange(commands)] },
      uplink: [{ name: 'all', topic: `${prefix}/up/#`, exchange: up, routingKey: '{#}' }],
      downlink: [{ name: 'commands', exchange: commands, routingKey: '{deviceId}.#', topic: `${prefix}/devices/{deviceId}/commands/{#}`, qos: 1, queueName: queue }],
    },
    { parts: { ...REAL_PARTS, createMqtt: async (options) => (server = await MqttServer.create(options)) } },
  );
  forwarded = await TestConsumer.create([{ exchange: up, key: '#' }]);
});

after(async () => {
  redis.resume();
  await forwarded?.close();
  await bridge?.stop();
  await redis?.remove();
  await withChannel(async (channel) => {
    await channel.deleteQueue(queue);
    await channel.deleteExchange(up);
    await channel.deleteExchange(commands);
  }).catch(() => {});
});

const url = () => bridge.url('tcp');
const requeued = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_requeued_total', { rule: 'commands' });
const forwardedOn = (topic: string) => forwarded.messages.filter((message) => message.properties.headers?.['x-mqtt-topic'] === topic).map((message) => message.content.toString());

/** Subscribes a persistent device to its commands and leaves it offline. */
async function offlineDevice(deviceId: string): Promise<string> {
  const clientId = uniqueName(`trouble-${deviceId}`);
  const client = await connectClient(url(), { clientId, clean: false });
  await client.subscribeAsync(`${prefix}/devices/${deviceId}/commands/#`, { qos: 1 });
  await client.endAsync();
  return clientId;
}

/** Brings a persistent device back; resolves with its CONNACK's session present flag and what it receives. */
async function comeBack(clientId: string): Promise<{ client: mqtt.MqttClient; sessionPresent: boolean; received: string[] }> {
  const received: string[] = [];
  const client = mqtt.connect(url(), { protocolVersion: 4, reconnectPeriod: 0, clientId, clean: false });
  client.on('message', (_topic, payload) => received.push(payload.toString()));
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  return { client, sessionPresent, received };
}

async function sendCommands(deviceId: string, payloads: readonly string[]): Promise<void> {
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  for (const payload of payloads) channel.publish(commands, `${deviceId}.run`, Buffer.from(payload), { persistent: true });
  await channel.waitForConfirms();
  await connection.close();
}

async function queueDrained(): Promise<void> {
  await waitFor(
    async () => {
      const depth = await queueDepth(queue);
      return depth.ready === 0 && depth.unacknowledged === 0;
    },
    'the commands to be stored and acknowledged',
    30_000,
  );
}

/** A raw connection, logged in (clean session). */
async function raw(): Promise<RawMqttClient> {
  const connection = await RawMqttClient.open('tcp', url());
  connection.sendConnect({ clientId: uniqueName('trouble-raw') });
  assert.equal(((await connection.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
  return connection;
}

test('redis trouble - Redis down: uplink without retain flows; CONNECT gets 3; retained and QoS 2 publishes are refused, not acknowledged; commands are requeued, not acknowledged; all recovers when Redis is back', async () => {
  const deviceId = 'down';
  const clientId = await offlineDevice(deviceId);
  const publisher = await connectClient(url(), { clientId: uniqueName('trouble-publisher') });
  const retainer = await raw();
  const qos2 = await raw();
  try {
    assert.deepEqual(server.stateHealth(), { ready: true });
    await redis.stop('SIGKILL');
    await waitFor(() => !server.stateHealth().ready, 'the state to say it is not ready');
    assert.match(server.stateHealth().reason ?? '', /Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unreachable/);
    // /readyz and the metrics say so too: a load balancer sends new devices elsewhere.
    const readyz = await fetch(`${bridge.bridge.http!.url}/readyz`);
    assert.equal(readyz.status, 503);
    const reasons = ((await readyz.json()) as { reasons: string[] }).reasons;
    assert.ok(reasons.some((reason) => /^mqtt state: Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unreachable/.test(reason)), reasons.join('; '));
    assert.ok(reasons.includes('mqtt cluster: Redis unreachable: publishes to and from other bridge instances are lost'), reasons.join('; '));
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_state_ready', { store: 'redis' }), 0);

    // A device's own publish without retain needs no Redis: acknowledged after RabbitMQ confirmed it.
    await publisher.publishAsync(`${prefix}/up/qos1`, 'one', { qos: 1 });
    publisher.publish(`${prefix}/up/qos0`, 'zero', { qos: 0 });
    await waitFor(() => forwardedOn(`${prefix}/up/qos1`).length === 1 && forwardedOn(`${prefix}/up/qos0`).length === 1, 'the QoS 0 and 1 publishes at RabbitMQ');

    // A retained publish needs Redis: refused before anything, no PUBACK.
    retainer.send({ cmd: 'publish', topic: `${prefix}/up/retained`, payload: Buffer.from('kept?'), qos: 1, messageId: 7, retain: true, dup: false });
    await waitFor(() => retainer.closed, 'the retained publisher to be closed');
    assert.equal(retainer.count('puback'), 0, 'a retained publish is not acknowledged');
    // A QoS 2 publish needs its receive state in Redis: no PUBREC, not forwarded.
    qos2.send({ cmd: 'publish', topic: `${prefix}/up/qos2`, payload: Buffer.from('two'), qos: 2, messageId: 8, retain: false, dup: false });
    await waitFor(() => qos2.closed, 'the QoS 2 publisher to be closed');
    assert.equal(qos2.count('pubrec'), 0, 'a QoS 2 publish is not acknowledged');

    const refused = await RawMqttClient.open('tcp', url());
    refused.sendConnect({ clientId: uniqueName('trouble-late') });
    assert.equal(((await refused.next('connack')) as unknown as { returnCode: number }).returnCode, 3, 'CONNACK 3: server unavailable');
    refused.destroy();

    // Commands for a persistent session cannot be stored: requeued, never acknowledged.
    const before = await requeued();
    await sendCommands(deviceId, ['c1', 'c2', 'c3']);
    await waitFor(async () => (await requeued()) >= before + 3, 'the commands to be requeued');
    const depth = await queueDepth(queue);
    assert.equal(depth.ready + depth.unacknowledged, 3, 'RabbitMQ still holds the 3 commands');
    assert.equal(forwardedOn(`${prefix}/up/retained`).length + forwardedOn(`${prefix}/up/qos2`).length, 0, 'what was refused was not forwarded');

    await redis.start();
    await waitFor(() => server.stateHealth().ready, () => `the state to be ready again (${server.stateHealth().reason})`, 20_000);
    await waitFor(async () => (await fetch(`${bridge.bridge.http!.url}/readyz`)).status === 200, () => `/readyz to answer 200 again (${bridge.bridge.readiness().reasons.join('; ')})`, 20_000);
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_state_ready', { store: 'redis' }), 1);
    await queueDrained();
    const back = await comeBack(clientId);
    try {
      assert.equal(back.sessionPresent, true);
      await waitFor(() => back.received.length >= 3, 'the 3 commands');
      await delay(300);
      assert.deepEqual(back.received.sort(), ['c1', 'c2', 'c3']);
    } finally {
      await back.client.endAsync();
    }
    // Retained publishes work again, and QoS 2.
    await publisher.publishAsync(`${prefix}/up/retained`, 'kept', { qos: 1, retain: true });
    await publisher.publishAsync(`${prefix}/up/qos2`, 'two', { qos: 2 });
    const watcher = await connectClient(url(), { clientId: uniqueName('trouble-watcher') });
    const retained: string[] = [];
    watcher.on('message', (topic, payload) => retained.push(`${topic}=${payload.toString()}`));
    await watcher.subscribeAsync(`${prefix}/up/retained`, { qos: 1 });
    await waitFor(() => retained.length === 1, 'the retained message');
    assert.deepEqual(retained, [`${prefix}/up/retained=kept`]);
    await watcher.endAsync();
    assert.equal(bridge.bridge.state, 'running');
  } finally {
    retainer.destroy();
    qos2.destroy();
    await publisher.endAsync();
  }
});

test('redis trouble - Redis killed and restarted while commands stream in: every command reaches the device once Redis is back, none lost', async (t) => {
  const deviceId = 'restart';
  const clientId = await offlineDevice(deviceId);
  const payloads = Array.from({ length: 300 }, (_, i) => `r${i}`);
  const delivered = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_messages_total', { rule: 'commands', qos: '1' });
  const before = await delivered();
  const sending = sendCommands(deviceId, payloads);
  await waitFor(async () => (await delivered()) >= before + 50, '50 commands stored');
  await redis.stop('SIGKILL');
  await delay(1_000);
  await redis.start();
  await sending;
  await queueDrained();
  await waitFor(() => server.stateHealth().ready, 'the state to be ready again', 20_000);
  const back = await comeBack(clientId);
  try {
    assert.equal(back.sessionPresent, true);
    await waitFor(() => new Set(back.received).size >= payloads.length, () => `every command (${new Set(back.received).size} so far)`, 30_000);
    await delay(300);
    assert.deepEqual([...new Set(back.received)].sort(), [...payloads].sort(), 'every command arrived');
    // A command stored just before Redis died, whose answer was lost with the connection, is requeued and stored again.
    t.diagnostic(`${back.received.length - payloads.length} duplicates`);
  } finally {
    await back.client.endAsync();
  }
});

test('redis trouble - Redis hanging (SIGSTOP) past the command timeout: not ready, CONNECT gets 3 and commands are requeued; all flows when it answers again', async () => {
  const deviceId = 'slow';
  const clientId = await offlineDevice(deviceId);
  const before = await requeued();
  redis.pause();
  try {
    await sendCommands(deviceId, ['s1', 's2']);
    await waitFor(() => !server.stateHealth().ready, 'the state to say it is not ready', 20_000);
    assert.match(server.stateHealth().reason ?? '', /timed out|slow|not answered/);
    await waitFor(async () => (await requeued()) >= before + 2, 'the commands to be requeued', 20_000);
    const late = await RawMqttClient.open('tcp', url());
    late.sendConnect({ clientId: uniqueName('trouble-slow') });
    assert.equal(((await late.next('connack', 15_000)) as unknown as { returnCode: number }).returnCode, 3);
    late.destroy();
  } finally {
    redis.resume();
  }
  await waitFor(() => server.stateHealth().ready, () => `the state to be ready again (${server.stateHealth().reason})`, 20_000);
  await queueDrained();
  const back = await comeBack(clientId);
  try {
    assert.equal(back.sessionPresent, true);
    await waitFor(() => back.received.length >= 2, 'the 2 commands');
    assert.deepEqual([...new Set(back.received)].sort(), ['s1', 's2']);
  } finally {
    await back.client.endAsync();
  }
});
