import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import amqplib from 'amqplib';
import { AMQP_URL, delay, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, type TestBridge } from '../helpers/bridge.js';
import { captureLogs } from '../helpers/log-capture.js';

const prefix = uniqueName('restart');
const exchange = uniqueName('restart-commands');
const queue = uniqueName('restart-queue');
const directory = mkdtempSync(join(tmpdir(), 'bridge-sessions-'));
const sessionFile = join(directory, 'sessions.json');

const settings = () => ({
  mqtt: { listeners: [{ type: 'tcp' as const, host: '127.0.0.1', port: 0 }], sessionFile },
  amqp: { exchanges: [{ name: exchange, type: 'topic' as const, durable: false, autoDelete: false }] },
  downlink: [{ name: 'commands', exchange, routingKey: '{deviceId}.#', topic: `${prefix}/devices/{deviceId}/commands/{#}`, qos: 1 as const, queueName: queue }],
});

let running: TestBridge | null = null;

after(async () => {
  await running?.stop();
  await withChannel(async (channel) => {
    await channel.deleteQueue(queue);
    await channel.deleteExchange(exchange);
  }).catch(() => {});
});

test('restart - commands sent while the bridge is stopped reach a persistent session after it starts; retained messages survive', async () => {
  const clientId = uniqueName('restart-device');
  running = await startTestBridge(settings());
  const device = await connectClient(running.url('tcp'), { clientId, clean: false });
  await device.subscribeAsync(`${prefix}/devices/d9/commands/#`, { qos: 1 });
  await device.publishAsync(`${prefix}/state/d9`, 'online', { qos: 1, retain: true });
  await device.endAsync();
  await running.stop();
  running = null;
  assert.ok(existsSync(sessionFile), 'the sessions were saved on shutdown');

  // The bridge is down: RabbitMQ keeps the commands in the bridge's durable queue.
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  for (let i = 0; i < 20; i++) channel.publish(exchange, `d9.step`, Buffer.from(String(i)), { persistent: true });
  await channel.waitForConfirms();
  assert.equal((await channel.checkQueue(queue)).messageCount, 20);
  await connection.close();

  const { logger, lines } = captureLogs();
  running = await startTestBridge(settings(), { logger });
  const restored = lines.find((line) => line.msg === 'persistent sessions restored');
  assert.deepEqual([restored?.sessions, restored?.retained], [1, 1]);
  assert.equal(existsSync(sessionFile), false, 'a snapshot is read once');
  await waitFor(async () => (await withChannel((c) => c.checkQueue(queue))).messageCount === 0, 'the bridge to take the queued commands');

  const received: string[] = [];
  const back = await connectClient(running.url('tcp'), { clientId, clean: false });
  back.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
  const watcher = await connectClient(running.url('tcp'));
  const retained: string[] = [];
  watcher.on('message', (topic, payload, packet) => retained.push(`${topic} ${payload.toString()} ${packet.retain}`));
  try {
    await waitFor(() => received.length >= 20, 'the 20 commands');
    await delay(300);
    assert.deepEqual(received, Array.from({ length: 20 }, (_, i) => `${prefix}/devices/d9/commands/step ${i}`));
    await watcher.subscribeAsync(`${prefix}/state/+`, { qos: 1 });
    await waitFor(() => retained.length === 1, 'the retained state');
    assert.deepEqual(retained, [`${prefix}/state/d9 online true`]);
  } finally {
    await back.endAsync();
    await watcher.endAsync();
  }
});

test('restart - an unreadable session file is moved aside and the bridge starts without it', async () => {
  await running?.stop();
  running = null;
  writeFileSync(sessionFile, '{ not json');
  const { logger, lines } = captureLogs();
  running = await startTestBridge(settings(), { logger });
  const failure = lines.find((line) => line.msg === 'could not restore persistent sessions; starting without them');
  assert.ok(failure, 'the failure is logged');
  assert.ok(existsSync(String(failure.movedTo)), 'the file is kept for inspection');
  assert.equal(existsSync(sessionFile), false);
});
