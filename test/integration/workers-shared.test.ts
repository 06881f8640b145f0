import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Duplex } from 'node:stream';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import { AMQP_URL, deleteExchanges, publishConfirmed, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { transientExchange } from '../helpers/bridge.js';
import { deleteRedisKeys, killWorkers, REDIS_URL, startWorkers, type WorkersProcess } from '../helpers/workers.js';

/*
 * `run --workers 2` acts as one MQTT server: what the workers share through Redis (the MQTT
 * state) and route between them (the cluster emitter).
 */

/** Each test fails (not hangs) when what it waits for never comes. */
const SHARED = { timeout: 60_000 };

const keyPrefix = `${uniqueName('workers-shared')}:`;
const uplinkExchange = uniqueName('workers-shared-up');
const commands = uniqueName('workers-shared-cmd');
const commandQueue = uniqueName('workers-shared-queue');
let workers: WorkersProcess;
let consumer: TestConsumer;
const clients: MqttClient[] = [];

before(async () => {
  await withChannel(async (channel) => {
    await channel.assertExchange(uplinkExchange, 'topic', { durable: false, autoDelete: false });
    await channel.assertExchange(commands, 'topic', { durable: false, autoDelete: false });
  });
  consumer = await TestConsumer.create([{ exchange: uplinkExchange, key: '#' }]);
  workers = await startWorkers(
    {
      mqtt: { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], persistence: { type: 'redis', url: REDIS_URL, keyPrefix } },
      amqp: { url: AMQP_URL, exchanges: [transientExchange(uplinkExchange), transientExchange(commands)] },
      uplink: [{ name: 'all', topic: '#', exchange: uplinkExchange, routingKey: '{#}' }],
      downlink: [{ name: 'commands', exchange: commands, routingKey: '{deviceId}.#', topic: 'cmd/{deviceId}/{#}', qos: 1, queueName: commandQueue }],
      http: { host: '127.0.0.1', port: 0 },
      log: { level: 'debug' },
      shutdownTimeoutMs: 5_000,
    },
    2,
  );
});

after(async () => {
  await Promise.all(clients.map((client) => client.endAsync(true).catch(() => {})));
  await killWorkers(workers);
  await consumer?.close();
  await withChannel((channel) => channel.deleteQueue(commandQueue)).catch(() => {});
  await deleteExchanges(uplinkExchange, commands);
  await deleteRedisKeys(keyPrefix);
});

interface Placed {
  client: MqttClient;
  /** Every message it received, from its first packet on. */
  messages: Array<{ topic: string; payload: string; qos: number; retain: boolean }>;
  sessionPresent: boolean;
}

/** A client whose messages are recorded from the start (queued ones come right after CONNACK). */
async function connectRecorded(clientId: string, options: mqtt.IClientOptions): Promise<Placed> {
  const client = mqtt.connect(workers.urls.tcp!, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000, clientId, ...options });
  const messages: Placed['messages'] = [];
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }));
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  clients.push(client);
  return { client, messages, sessionPresent: connack.sessionPresent };
}

/** The worker slot that took this client id's latest connection, once it has logged it. */
async function placedOn(clientId: string, seen: number): Promise<number> {
  await waitFor(() => workers.lines.slice(seen).some((line) => line.msg === 'client connected' && line.clientId === clientId), `${clientId} to be placed`);
  return workers.slotOf(clientId)!;
}

/**
 * A client connected to the worker in `slot`. node:cluster hands connections to the two workers
 * in turn, so once a throwaway connection has landed on the other worker the next one lands on
 * this one; the client id itself connects once (a second try would resume or take over its
 * session on the wrong worker).
 */
async function connectOn(slot: number, clientId: string, options: mqtt.IClientOptions = {}): Promise<Placed> {
  for (let probes = 0; ; probes++) {
    assert.ok(probes < 5, 'connections alternate between the workers');
    const probeId = uniqueName('probe');
    const seen = workers.lines.length;
    const probe = await connectRecorded(probeId, {});
    const landed = await placedOn(probeId, seen);
    await probe.client.endAsync();
    if (landed !== slot) break;
  }
  const seen = workers.lines.length;
  const placed = await connectRecorded(clientId, options);
  assert.equal(await placedOn(clientId, seen), slot, `${clientId} on worker ${slot}`);
  return placed;
}

test('run --workers (shared) - a device on one worker receives what a device on the other publishes, at the QoS it subscribed with', SHARED, async () => {
  const topic = `live/${uniqueName('t')}`;
  const { client: subscriber, messages } = await connectOn(1, uniqueName('sub'));
  await subscriber.subscribeAsync(`${topic}/#`, { qos: 1 });
  const { client: publisher } = await connectOn(2, uniqueName('pub'));
  await publisher.publishAsync(`${topic}/a`, 'one', { qos: 1 });
  await publisher.publishAsync(`${topic}/b`, 'two', { qos: 0 });
  await publisher.publishAsync(`${topic}/c`, 'three', { qos: 2 });
  await waitFor(() => messages.length >= 3, () => `3 messages (have ${messages.length})`);
  assert.deepEqual(
    [...messages].sort((x, y) => x.topic.localeCompare(y.topic)),
    [
      { topic: `${topic}/a`, payload: 'one', qos: 1, retain: false },
      { topic: `${topic}/b`, payload: 'two', qos: 0, retain: false },
      { topic: `${topic}/c`, payload: 'three', qos: 1, retain: false },
    ],
  );
});

test('run --workers (shared) - a retained message set through one worker is delivered by the other', SHARED, async () => {
  const topic = `retained/${uniqueName('t')}`;
  const { client: publisher } = await connectOn(1, uniqueName('pub'));
  await publisher.publishAsync(topic, 'kept', { qos: 1, retain: true });
  const { client: subscriber, messages } = await connectOn(2, uniqueName('sub'));
  await subscriber.subscribeAsync(topic, { qos: 1 });
  await waitFor(() => messages.length >= 1, 'the retained message');
  assert.deepEqual(messages, [{ topic, payload: 'kept', qos: 1, retain: true }]);
  await publisher.publishAsync(topic, '', { qos: 1, retain: true });
});

test('run --workers (shared) - a persistent session left on one worker resumes on the other with session present and what was queued', SHARED, async () => {
  const clientId = uniqueName('persistent');
  const topic = `queued/${clientId}`;
  const { client: first } = await connectOn(1, clientId, { clean: false });
  await first.subscribeAsync(`${topic}/#`, { qos: 1 });
  await first.endAsync();
  const { client: publisher } = await connectOn(1, uniqueName('pub'));
  for (let i = 0; i < 3; i++) await publisher.publishAsync(`${topic}/${i}`, `m${i}`, { qos: 1 });

  const second = await connectOn(2, clientId, { clean: false });
  await waitFor(() => second.messages.length >= 3, () => `3 queued messages (have ${second.messages.length})`);
  assert.equal(second.sessionPresent, true);
  assert.deepEqual(
    second.messages.map((message) => message.payload),
    ['m0', 'm1', 'm2'],
  );
});

test('run --workers (shared) - the same client id connecting on the other worker closes the first connection', SHARED, async () => {
  const clientId = uniqueName('takeover');
  const { client: first } = await connectOn(1, clientId);
  const { client: second } = await connectOn(2, clientId);
  await waitFor(() => !first.connected, 'the first connection to be closed');
  assert.equal(second.connected, true);
});

test('run --workers (shared) - a will fires once, to subscribers on both workers and to RabbitMQ', SHARED, async () => {
  const topic = `will/${uniqueName('t')}`;
  const near = await connectOn(1, uniqueName('near'));
  const far = await connectOn(2, uniqueName('far'));
  await near.client.subscribeAsync(topic, { qos: 1 });
  await far.client.subscribeAsync(topic, { qos: 1 });
  const { client: dying } = await connectOn(1, uniqueName('dying'), { will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } });
  (dying as unknown as { stream: Duplex }).stream.destroy();
  await waitFor(() => near.messages.length >= 1 && far.messages.length >= 1, 'the will on both workers');
  await waitFor(() => consumer.messages.some((message) => message.fields.routingKey === topic.replace('/', '.')), 'the will in RabbitMQ');
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.deepEqual([near.messages.length, far.messages.length], [1, 1]);
  assert.equal(consumer.messages.filter((message) => message.fields.routingKey === topic.replace('/', '.')).length, 1, 'forwarded to RabbitMQ once');
});

test('run --workers (shared) - each downlink command reaches the device once, whichever worker it is on', SHARED, async () => {
  for (const slot of [1, 2]) {
    const device = uniqueName(`dev${slot}`);
    const { client, messages } = await connectOn(slot, device);
    await client.subscribeAsync(`cmd/${device}/#`, { qos: 1 });
    for (let i = 0; i < 10; i++) await publishConfirmed(commands, `${device}.set.${i}`, `c${i}`);
    await waitFor(() => messages.length >= 10, () => `10 commands on worker ${slot} (have ${messages.length})`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(
      messages.map((message) => message.payload),
      Array.from({ length: 10 }, (_, i) => `c${i}`),
    );
  }
});

test('run --workers (shared) - SIGKILL of every worker after they took commands for an offline session loses none of them', SHARED, async () => {
  const device = uniqueName('durable');
  const { client: first } = await connectOn(1, device, { clean: false });
  await first.subscribeAsync(`cmd/${device}/#`, { qos: 1 });
  await first.endAsync();
  for (let i = 0; i < 50; i++) await publishConfirmed(commands, `${device}.n.${i}`, `n${i}`);
  // Taken from RabbitMQ: every command was acknowledged by a worker.
  await waitFor(async () => (await withChannel((channel) => channel.checkQueue(commandQueue))).messageCount === 0, 'the command queue to drain');
  for (const pid of workers.workerPids().values()) process.kill(pid, 'SIGKILL');
  // Whichever worker takes it once they are restarted, the session is in Redis.
  await waitFor(async () => (await fetch(`${workers.http}/readyz`)).status === 200, 'the workers to be restarted', 20_000);
  const back = await connectRecorded(device, { clean: false });
  assert.equal(back.sessionPresent, true);
  await waitFor(() => back.messages.length >= 50, () => `50 commands (have ${back.messages.length})`);
  assert.deepEqual(
    back.messages.map((message) => message.payload),
    Array.from({ length: 50 }, (_, i) => `n${i}`),
  );
});
