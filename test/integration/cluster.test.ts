import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket } from 'mqtt-packet';
import amqplib from 'amqplib';
import { AMQP_URL, delay, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, transientExchange, TRANSPORTS } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';
import { counterTotal, deleteKeys, REDIS_URL, startClusterBridge, type ClusterBridge } from '../helpers/cluster.js';

// Many bridges on one Redis and one RabbitMQ act as one MQTT server (docs/architecture.md, "Many
// instances, one MQTT server"). Three bridges run as their own processes; C is killed last.
const keyPrefix = `${uniqueName('cluster')}:`;
const topicRoot = uniqueName('cluster');
const uplinkExchange = uniqueName('cluster-uplink');
const commandsExchange = uniqueName('cluster-commands');
const commandsQueue = uniqueName('cluster-commands-queue');
const directory = mkdtempSync(join(tmpdir(), 'bridge-cluster-'));
const INSTANCE_TIMEOUT_SECONDS = 2;

const config = () => ({
  mqtt: { persistence: { type: 'redis', url: REDIS_URL, keyPrefix, instanceTimeoutSeconds: INSTANCE_TIMEOUT_SECONDS } },
  amqp: { exchanges: [transientExchange(uplinkExchange), transientExchange(commandsExchange)] },
  uplink: [{ name: 'all', topic: '#', exchange: uplinkExchange, routingKey: '{#}' }],
  downlink: [{ name: 'commands', exchange: commandsExchange, routingKey: '{deviceId}.#', topic: `${topicRoot}/devices/{deviceId}/commands/{#}`, qos: 1, queueName: commandsQueue }],
});

let a: ClusterBridge;
let b: ClusterBridge;
let c: ClusterBridge;
const clients: MqttClient[] = [];
const redisConnections: Redis[] = [];

before(async () => {
  [a, b, c] = await Promise.all([startClusterBridge(directory, 'a', config()), startClusterBridge(directory, 'b', config()), startClusterBridge(directory, 'c', config())]);
});

after(async () => {
  await Promise.all(clients.map((client) => client.endAsync(true).catch(() => {})));
  for (const redis of redisConnections) redis.disconnect();
  await Promise.all([a, b, c].map((bridge) => bridge?.stop()));
  await withChannel(async (channel) => {
    await channel.deleteQueue(commandsQueue);
    await channel.deleteExchange(uplinkExchange);
    await channel.deleteExchange(commandsExchange);
  }).catch(() => {});
  await deleteKeys(keyPrefix);
  rmSync(directory, { recursive: true, force: true });
});

async function device(url: string, options: Parameters<typeof connectClient>[1] = {}): Promise<MqttClient> {
  const client = await connectClient(url, options);
  clients.push(client);
  return client;
}

interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
}

function collect(client: MqttClient): Received[] {
  const received: Received[] = [];
  client.on('message', (topic, payload, packet) => received.push({ topic, payload, qos: packet.qos, retain: packet.retain }));
  return received;
}

/** Counts what Redis carries to each bridge's inbox (`KEYPREFIXcluster:to:INSTANCE`), as the bridges receive it. */
async function watchInboxes(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const redis = new Redis(REDIS_URL);
  redisConnections.push(redis);
  redis.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer) => {
    const instance = channel.toString().slice(`${keyPrefix}cluster:to:`.length);
    counts.set(instance, (counts.get(instance) ?? 0) + 1);
  });
  await redis.psubscribe(`${keyPrefix}cluster:to:*`);
  return counts;
}

for (const transport of TRANSPORTS) {
  test(`cluster (${transport}) - a device on B receives what a device on A publishes, at the QoS it subscribed with, exact bytes`, async () => {
    const root = `${topicRoot}/${transport}/d2d`;
    const subscriber = await device(b.url(transport));
    const received = collect(subscriber);
    await subscriber.subscribeAsync({ [`${root}/q0`]: { qos: 0 }, [`${root}/q1`]: { qos: 1 }, [`${root}/q2/+`]: { qos: 2 } });
    const publisher = await device(a.url(transport));
    const payload = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0xc3, 0x28]);
    for (const level of [0, 1, 2] as const) await publisher.publishAsync(`${root}/q0`, Buffer.concat([payload, Buffer.from([level])]), { qos: level });
    for (const level of [0, 1, 2] as const) await publisher.publishAsync(`${root}/q1`, Buffer.concat([payload, Buffer.from([level])]), { qos: level });
    for (const level of [0, 1, 2] as const) await publisher.publishAsync(`${root}/q2/x`, Buffer.concat([payload, Buffer.from([level])]), { qos: level });
    await waitFor(() => received.length === 9, () => `9 messages on B (have ${received.length})`);
    await delay(200);
    const byTopic = (topic: string) => received.filter((message) => message.topic === topic).map((message) => [message.payload.toString('hex'), message.qos]);
    const bytes = (level: number) => Buffer.concat([payload, Buffer.from([level])]).toString('hex');
    assert.deepEqual(byTopic(`${root}/q0`), [[bytes(0), 0], [bytes(1), 0], [bytes(2), 0]]);
    assert.deepEqual(byTopic(`${root}/q1`), [[bytes(0), 0], [bytes(1), 1], [bytes(2), 1]]);
    assert.deepEqual(byTopic(`${root}/q2/x`), [[bytes(0), 0], [bytes(1), 1], [bytes(2), 2]]);
    assert.equal(received.length, 9, 'each once');
    await subscriber.endAsync();
    await publisher.endAsync();
  });
}

test('cluster - the same client id connecting on B closes its connection on A', async () => {
  const clientId = uniqueName('twin');
  const first = await device(a.url('tcp'), { clientId });
  const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
  const second = await device(b.url('ws'), { clientId });
  await closed;
  assert.equal(first.connected, false);
  assert.equal(second.connected, true);
  // The one left still works as a device: it gets what A publishes.
  const received = collect(second);
  await second.subscribeAsync(`${topicRoot}/twin/${clientId}`, { qos: 1 });
  const publisher = await device(a.url('tcp'));
  await publisher.publishAsync(`${topicRoot}/twin/${clientId}`, 'after takeover', { qos: 1 });
  await waitFor(() => received.length === 1, 'the survivor to receive it');
  await second.endAsync();
  await publisher.endAsync();
});

test('cluster - each downlink message reaches each matching device exactly once, wherever it is connected (instances share the rule\'s queue)', async () => {
  const ids = ['d0', 'd1', 'd2', 'd3'].map((id) => `${id}-${process.pid}`);
  const received = new Map<string, string[]>();
  for (const [index, id] of ids.entries()) {
    const client = await device((index < 2 ? a : b).url(index % 2 === 0 ? 'tcp' : 'ws'), { clientId: uniqueName(id) });
    const messages: string[] = [];
    received.set(id, messages);
    client.on('message', (topic, payload) => messages.push(`${topic} ${payload.toString()}`));
    await client.subscribeAsync(`${topicRoot}/devices/${id}/commands/#`, { qos: 1 });
  }
  const before = await Promise.all([a, b, c].map(async (bridge) => counterTotal(await bridge.metrics(), 'mqtt_amqp_bridge_downlink_messages_total')));
  const connection = await amqplib.connect(AMQP_URL);
  try {
    const channel = await connection.createConfirmChannel();
    for (let i = 0; i < 50; i++) channel.publish(commandsExchange, `${ids[i % 4]}.step`, Buffer.from(String(i)), { persistent: true });
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
  await waitFor(() => [...received.values()].reduce((sum, messages) => sum + messages.length, 0) >= 50, () => `50 commands (have ${[...received.values()].map((m) => m.length).join('+')})`);
  await delay(300);
  for (const [index, id] of ids.entries()) {
    const expected = Array.from({ length: 50 }, (_, i) => i)
      .filter((i) => i % 4 === index)
      .map((i) => `${topicRoot}/devices/${id}/commands/step ${i}`);
    assert.deepEqual([...received.get(id)!].sort(), expected.sort(), `${id} gets exactly its own, once`);
  }
  const taken = (await Promise.all([a, b, c].map(async (bridge) => counterTotal(await bridge.metrics(), 'mqtt_amqp_bridge_downlink_messages_total')))).map((count, index) => count - before[index]!);
  assert.equal(taken.reduce((sum, count) => sum + count, 0), 50, `each command taken once: ${taken.join(', ')}`);
  assert.ok(taken.filter((count) => count > 0).length >= 2, `the instances compete for the queue: ${taken.join(', ')}`);
});

test('cluster - a publish crosses to another instance only when a subscription there matches', async () => {
  const inboxes = await watchInboxes();
  const watcher = await device(b.url('tcp'));
  const received = collect(watcher);
  await watcher.subscribeAsync(`${topicRoot}/wanted/#`, { qos: 1 });
  const publisher = await device(a.url('tcp'));
  for (let i = 0; i < 200; i++) await publisher.publishAsync(`${topicRoot}/telemetry/${i % 10}`, `reading ${i}`, { qos: i % 2 === 0 ? 0 : 1 });
  await publisher.publishAsync(`${topicRoot}/wanted/1`, 'wanted', { qos: 1 });
  await waitFor(() => received.length === 1, 'the wanted one on B');
  await delay(200);
  assert.deepEqual(Object.fromEntries(inboxes), { [b.instanceId]: 1 }, 'one message crossed, to B only: none of the 200 nobody subscribes to');
  await watcher.endAsync();
  await publisher.endAsync();
});

test('cluster - retained message set through A is delivered by B', async () => {
  const topic = `${topicRoot}/retained/${uniqueName('r')}`;
  const publisher = await device(a.url('tcp'));
  await publisher.publishAsync(topic, 'kept', { qos: 1, retain: true });
  const late = await device(b.url('ws'));
  const received = collect(late);
  await late.subscribeAsync(topic, { qos: 1 });
  await waitFor(() => received.length === 1, 'the retained message from B', 3_000);
  assert.deepEqual([received[0]!.payload.toString(), received[0]!.retain], ['kept', true]);
  await publisher.publishAsync(topic, '', { qos: 1, retain: true });
});

test('cluster - a persistent session left on A resumes on B with session present and what was queued', async () => {
  const clientId = uniqueName('persistent');
  const topic = `${topicRoot}/persistent/${clientId}`;
  const first = await device(a.url('tcp'), { clientId, clean: false });
  await first.subscribeAsync(topic, { qos: 1 });
  await first.endAsync();
  const publisher = await device(a.url('tcp'));
  for (let i = 0; i < 5; i++) await publisher.publishAsync(topic, `queued ${i}`, { qos: 1 });
  const back = await RawMqttClient.open('tcp', b.url('tcp'));
  try {
    const connack = await back.connect(clientId, false);
    assert.deepEqual([connack.returnCode, connack.sessionPresent], [0, true]);
    const payloads: string[] = [];
    for (let i = 0; i < 5; i++) {
      const publish = (await back.next('publish', 3_000)) as IPublishPacket;
      payloads.push(publish.payload.toString());
      back.send({ cmd: 'puback', messageId: publish.messageId });
    }
    assert.deepEqual(payloads, ['queued 0', 'queued 1', 'queued 2', 'queued 3', 'queued 4']);
  } finally {
    back.destroy();
  }
});

test('cluster - a will fires once', async () => {
  const clientId = uniqueName('will');
  const topic = `${topicRoot}/will/${clientId}`;
  const watchers = await Promise.all([a, b, c].map((bridge) => device(bridge.url('tcp'))));
  const received = watchers.map(collect);
  for (const watcher of watchers) await watcher.subscribeAsync(topic, { qos: 1 });
  const dying = await device(a.url('tcp'), { clientId, will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } });
  (dying.stream as unknown as { destroy(): void }).destroy();
  await waitFor(() => received.every((messages) => messages.length >= 1), 'every watcher to get the will', 5_000);
  await delay(1_000);
  assert.deepEqual(received.map((messages) => messages.map((message) => message.payload.toString())), [['gone'], ['gone'], ['gone']]);
});

// Last: it kills C.
test('cluster - an instance killed: its routes leave the others after its heartbeat expires; its devices reconnect elsewhere and subscriptions work again', async () => {
  const inboxes = await watchInboxes();
  const clientId = uniqueName('survivor');
  const topic = `${topicRoot}/killed/${clientId}`;
  const onC = await device(c.url('tcp'), { clientId });
  await onC.subscribeAsync(topic, { qos: 1 });
  const publisher = await device(a.url('tcp'));
  await publisher.publishAsync(topic, 'before', { qos: 1 });
  await waitFor(() => inboxes.get(c.instanceId) === 1, 'the publish to cross to C');

  const routes = new Redis(REDIS_URL);
  redisConnections.push(routes);
  assert.equal(await routes.exists(`${keyPrefix}cluster:routes:${c.instanceId}`), 1);
  c.process.child.kill('SIGKILL');
  await c.process.exit;
  const killedAt = Date.now();
  await waitFor(async () => (await routes.exists(`${keyPrefix}cluster:routes:${c.instanceId}`)) === 0, 'C\'s routes to be removed', 15_000);
  assert.ok(Date.now() - killedAt < INSTANCE_TIMEOUT_SECONDS * 1000 * 4, 'within a few heartbeats of the timeout');
  // A has dropped C's routes from memory: nothing more is sent to C.
  await delay(200);
  await publisher.publishAsync(topic, 'nobody there', { qos: 1 });
  await delay(200);
  assert.equal(inboxes.get(c.instanceId), 1);

  const moved = await device(b.url('tcp'), { clientId });
  const received = collect(moved);
  await moved.subscribeAsync(topic, { qos: 1 });
  await publisher.publishAsync(topic, 'after', { qos: 1 });
  await waitFor(() => received.length === 1, 'the device, now on B, to receive it');
  assert.equal(received[0]!.payload.toString(), 'after');
});
