import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import amqplib from 'amqplib';
import { AMQP_URL, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { transientExchange } from '../helpers/bridge.js';
import { deleteKeys, REDIS_URL, startClusterBridge, type ClusterBridge } from '../helpers/cluster.js';

// SIGKILL of one bridge instance while devices publish through it and commands stream to a
// persistent device connected to it: every publish it acknowledged is at RabbitMQ, and every
// command RabbitMQ let go of reaches the device, which comes back on the other instance
// (docs/persistence.md, "What survives a crash"). QoS 1 allows duplicates, never losses.

const keyPrefix = `${uniqueName('cluster-kill')}:`;
const topicRoot = uniqueName('kill');
const uplinkExchange = uniqueName('kill-uplink');
const commandsExchange = uniqueName('kill-commands');
const commandsQueue = uniqueName('kill-commands-queue');
const directory = mkdtempSync(join(tmpdir(), 'bridge-cluster-kill-'));
const PUBLISHERS = 5;
const COMMANDS = 2_000;

const config = () => ({
  // The device is away for most of the commands: its queue holds them all.
  mqtt: { maxOfflineMessages: 10_000, persistence: { type: 'redis', url: REDIS_URL, keyPrefix, instanceTimeoutSeconds: 2 } },
  amqp: { exchanges: [transientExchange(uplinkExchange), transientExchange(commandsExchange)] },
  uplink: [{ name: 'telemetry', topic: `${topicRoot}/telemetry/#`, exchange: uplinkExchange, routingKey: '{#}' }],
  downlink: [{ name: 'commands', exchange: commandsExchange, routingKey: '{deviceId}.#', topic: `${topicRoot}/devices/{deviceId}/commands/{#}`, qos: 1, queueName: commandsQueue, prefetch: 50 }],
});

let a: ClusterBridge;
let b: ClusterBridge;
let consumer: TestConsumer;
const clients: MqttClient[] = [];

before(async () => {
  [a, b] = await Promise.all([startClusterBridge(directory, 'a', config()), startClusterBridge(directory, 'b', config())]);
  consumer = await TestConsumer.create([{ exchange: uplinkExchange, key: '#' }]);
});

after(async () => {
  for (const client of clients) client.end(true);
  await consumer?.close();
  await Promise.all([a, b].map((bridge) => bridge?.stop()));
  await withChannel(async (channel) => {
    await channel.deleteQueue(commandsQueue);
    await channel.deleteExchange(uplinkExchange);
    await channel.deleteExchange(commandsExchange);
  }).catch(() => {});
  await deleteKeys(keyPrefix);
  rmSync(directory, { recursive: true, force: true });
});

function connect(url: string, options: mqtt.IClientOptions): MqttClient {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, ...options });
  client.on('error', () => {}); // the killed instance's connections end with errors: what was acknowledged is what counts
  clients.push(client);
  return client;
}

/** Publishes QoS 1 in a loop until the connection drops; resolves with the payloads that got their PUBACK. */
function publishUntilCut(client: MqttClient, publisher: number): Promise<string[]> {
  const acknowledged: string[] = [];
  return new Promise((resolve) => {
    let sequence = 0;
    let closed = false;
    client.once('close', () => {
      closed = true;
      resolve(acknowledged);
    });
    const next = () => {
      if (closed) return;
      const payload = `p${publisher}-${sequence++}`;
      client.publish(`${topicRoot}/telemetry/${publisher}`, payload, { qos: 1 }, (error) => {
        if (!error) acknowledged.push(payload);
      });
      // Ten in flight per publisher, so that some are unacknowledged when the process dies.
      if (sequence % 10 === 0) setImmediate(next);
      else next();
    };
    client.once('connect', next);
  });
}

test('cluster - SIGKILL of an instance under load: every publish it acknowledged is at RabbitMQ, every command RabbitMQ let go of reaches the persistent device on the other instance', async () => {
  const deviceId = uniqueName('dev');
  const clientId = `kill-${deviceId}`;
  const commandTopic = `${topicRoot}/devices/${deviceId}/commands/run`;

  // A persistent device on A, subscribed to its commands, receiving them as they stream in.
  const received: string[] = [];
  const device = connect(a.url('tcp'), { clientId, clean: false });
  device.on('message', (_topic, payload) => received.push(payload.toString()));
  await new Promise((resolve) => device.once('connect', resolve));
  await device.subscribeAsync(commandTopic, { qos: 1 });

  const publishers = Array.from({ length: PUBLISHERS }, (_, index) => publishUntilCut(connect(a.url('tcp'), { clientId: uniqueName(`pub${index}`) }), index));
  const sending = (async () => {
    const connection = await amqplib.connect(AMQP_URL);
    try {
      const channel = await connection.createConfirmChannel();
      for (let i = 0; i < COMMANDS; i++) {
        channel.publish(commandsExchange, `${deviceId}.run`, Buffer.from(`c${i}`), { persistent: true });
        if (i % 100 === 99) await channel.waitForConfirms();
      }
      await channel.waitForConfirms();
    } finally {
      await connection.close();
    }
  })();

  await waitFor(() => consumer.messages.length >= 500 && received.length >= 200, 'traffic in both directions through A', 30_000);
  a.process.child.kill('SIGKILL');
  await a.process.exit;
  const acknowledged = (await Promise.all(publishers)).flat();
  assert.ok(acknowledged.length >= 100, `publishes acknowledged before the kill: ${acknowledged.length}`);
  const receivedBeforeKill = received.length;
  assert.ok(receivedBeforeKill < COMMANDS, 'the kill came while commands were still streaming');

  // Uplink: every acknowledged publish reached RabbitMQ.
  await waitFor(() => {
    const atRabbit = new Set(consumer.messages.map((message) => message.content.toString()));
    return acknowledged.every((payload) => atRabbit.has(payload));
  }, () => `every acknowledged publish at RabbitMQ (missing ${acknowledged.filter((payload) => !consumer.messages.some((message) => message.content.toString() === payload)).slice(0, 5).join(', ')})`, 10_000);

  // Downlink: the device comes back on B to its session; every command arrives (QoS 1: some may twice).
  await sending;
  const back = connect(b.url('tcp'), { clientId, clean: false });
  back.on('message', (_topic, payload) => received.push(payload.toString()));
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => back.once('connect', resolve));
  assert.equal(connack.sessionPresent, true, 'the session left on A resumes on B');
  const expected = Array.from({ length: COMMANDS }, (_, i) => `c${i}`);
  await waitFor(
    () => new Set(received).size === COMMANDS,
    () => `all ${COMMANDS} commands at the device (have ${new Set(received).size}; missing ${expected.filter((payload) => !received.includes(payload)).slice(0, 5).join(', ')})`,
    60_000,
  );
  assert.deepEqual([...new Set(received)].sort(), [...expected].sort());
  await withChannel(async (channel) => {
    const queue = await channel.checkQueue(commandsQueue);
    assert.equal(queue.messageCount, 0, 'nothing left in the rule\'s queue');
  });
});
