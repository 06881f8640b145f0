import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import amqplib from 'amqplib';
import type { MqttClient } from 'mqtt';
import { AMQP_URL, delay, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge } from '../helpers/bridge.js';
import { freePort, runBridgeProcess, waitForAmqp, type BridgeProcess } from '../helpers/bridge-process.js';
import { closeConnectionsNamed, rabbitmqctl } from '../helpers/rabbitmqctl.js';

// Broker-wide faults (closing every connection, stopping the RabbitMQ application): the test
// command runs files one at a time, and the broker is always started again.

const exchange = uniqueName('chaos');
const queue = uniqueName('chaos-queue');

before(async () => {
  await withChannel(async (channel) => {
    await channel.assertExchange(exchange, 'topic', { durable: true, autoDelete: false });
    await channel.assertQueue(queue, { durable: true, autoDelete: false });
    await channel.bindQueue(queue, exchange, '#');
  });
});

after(async () => {
  await withChannel(async (channel) => {
    await channel.deleteQueue(queue);
    await channel.deleteExchange(exchange);
  }).catch(() => {});
});

/** Devices that reconnect by themselves and resend what was not acknowledged (persistent sessions). */
async function devices(url: string, count: number, tag: string): Promise<MqttClient[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      connectClient(url, { clientId: `${tag}-${i}`, clean: false, reconnectPeriod: 200, connectTimeout: 5_000 }),
    ),
  );
}

function stream(clients: MqttClient[], tag: string, perClient: number) {
  const acked = new Set<string>();
  const done = Promise.all(
    clients.map((client, c) =>
      Promise.all(
        Array.from({ length: perClient }, (_, i) => {
          const id = `${tag}:${c}:${i}`;
          return client.publishAsync(`${tag}/${c}`, id, { qos: 1 }).then(() => acked.add(id));
        }),
      ),
    ),
  );
  return { acked, done };
}

/** Takes every message off the queue; returns how often each payload arrived. */
async function drainQueue(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const connection = await amqplib.connect(AMQP_URL);
  try {
    const channel = await connection.createChannel();
    await channel.prefetch(1_000);
    let last = Date.now();
    await channel.consume(queue, (message) => {
      if (!message) return;
      const id = message.content.toString();
      counts.set(id, (counts.get(id) ?? 0) + 1);
      last = Date.now();
      channel.ack(message);
    });
    await waitFor(() => Date.now() - last > 1_000, 'the queue to be drained', 60_000);
  } finally {
    await connection.close();
  }
  return counts;
}

function report(counts: Map<string, number>, acked: Set<string>, label: string): void {
  const missing = [...acked].filter((id) => !counts.has(id));
  const duplicates = [...counts.values()].reduce((sum, n) => sum + n - 1, 0);
  console.log(`# ${label}: ${acked.size} acknowledged, ${counts.size} distinct in the queue, ${duplicates} duplicates, ${missing.length} missing`);
  assert.deepEqual(missing.slice(0, 10), [], 'every acknowledged message is in the queue');
}

test('chaos - 20,000 QoS 1 from 50 clients through two connection kills and a RabbitMQ restart: every acknowledged message is in the queue', async () => {
  const connectionName = uniqueName('bridge-chaos');
  const bridge = await startTestBridge({
    amqp: { connectionName, publishTimeoutMs: 20_000, reconnect: { initialDelayMs: 100, maxDelayMs: 1_000 } },
    uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
    flow: { refuseConnectionsAfterMs: 600_000 },
  });
  const clients = await devices(bridge.url('tcp'), 50, uniqueName('chaos'));
  const recoveries: number[] = [];
  const timeToOpen = async () => {
    const started = Date.now();
    await waitFor(() => bridge.bridge.flow.state !== 'open', 'the flow to leave open', 10_000).catch(() => {});
    await waitFor(() => bridge.bridge.flow.state === 'open', 'the flow to open again', 60_000);
    recoveries.push(Date.now() - started);
  };
  let appStopped = false;
  try {
    const { acked, done } = stream(clients, 'chaos', 400);
    await waitFor(() => acked.size >= 2_000, '2,000 acknowledgements', 60_000);
    assert.equal(await closeConnectionsNamed(connectionName, 'chaos test: first kill'), 1);
    await timeToOpen();
    await waitFor(() => acked.size >= 6_000, '6,000 acknowledgements', 60_000);
    await rabbitmqctl('close_all_connections', 'chaos test: second kill');
    await timeToOpen();
    await waitFor(() => acked.size >= 10_000, '10,000 acknowledgements', 60_000);
    appStopped = true;
    await rabbitmqctl('stop_app');
    await delay(1_000);
    await rabbitmqctl('start_app');
    appStopped = false;
    await rabbitmqctl('await_startup');
    await done;
    assert.equal(acked.size, 20_000);
    console.log(`# flow back to open after each connection kill: ${recoveries.join(' ms, ')} ms`);
    report(await drainQueue(), acked, 'chaos');
  } finally {
    if (appStopped) await rabbitmqctl('start_app').catch(() => {});
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await bridge.stop();
  }
});

async function startProcess(configFile: string, port: number): Promise<BridgeProcess> {
  const bridge = runBridgeProcess(['--config', configFile], { MQTT_PORT: String(port) });
  await waitForAmqp(bridge);
  return bridge;
}

function writeConfig(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-chaos-')), 'bridge.yaml');
  writeFileSync(
    file,
    [
      'mqtt:',
      '  listeners: [{ type: tcp, host: 127.0.0.1, port: "${MQTT_PORT}" }]',
      'amqp:',
      `  url: ${AMQP_URL}`,
      'uplink:',
      `  - { name: all, topic: "#", exchange: ${exchange}, routingKey: "{#}" }`,
      'log: { level: info }',
      '',
    ].join('\n'),
  );
  return file;
}

test('chaos - SIGKILL of the bridge mid-stream: after a restart every acknowledged message is in the queue', async () => {
  const file = writeConfig();
  const port = await freePort();
  let bridge = await startProcess(file, port);
  const clients = await devices(`mqtt://127.0.0.1:${port}`, 10, uniqueName('killed'));
  try {
    const { acked, done } = stream(clients, 'killed', 300);
    await waitFor(() => acked.size >= 1_000, '1,000 acknowledgements', 60_000);
    bridge.child.kill('SIGKILL');
    await bridge.exit;
    bridge = await startProcess(file, port);
    await done;
    assert.equal(acked.size, 3_000);
    report(await drainQueue(), acked, 'SIGKILL');
  } finally {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    bridge.child.kill('SIGKILL');
  }
});

test('chaos - SIGTERM under load: exit code 0 and every acknowledged message is in the queue', async () => {
  const file = writeConfig();
  const port = await freePort();
  const bridge = await startProcess(file, port);
  const clients = await devices(`mqtt://127.0.0.1:${port}`, 10, uniqueName('stopped'));
  try {
    const { acked } = stream(clients, 'stopped', 500);
    await waitFor(() => acked.size >= 1_000, '1,000 acknowledgements', 60_000);
    bridge.child.kill('SIGTERM');
    assert.equal(await bridge.exit, 0);
    const ackedAtExit = new Set(acked);
    assert.ok(ackedAtExit.size < 5_000, 'the bridge stopped mid-stream');
    report(await drainQueue(), ackedAtExit, 'SIGTERM');
  } finally {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    if (bridge.child.exitCode === null) bridge.child.kill('SIGKILL');
  }
});
