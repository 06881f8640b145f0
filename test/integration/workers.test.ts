import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { AMQP_URL, deleteExchanges, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, transientExchange } from '../helpers/bridge.js';
import { runBridgeProcess } from '../helpers/bridge-process.js';
import { makeCertificates, type TestCertificates } from '../helpers/certs.js';
import { alive, deleteRedisKeys, killWorkers, REDIS_URL, startWorkers, type WorkersProcess } from '../helpers/workers.js';

/*
 * `run --workers 2` as a user runs it (a child process): the worker mechanics (shared ports,
 * aggregated /metrics and /readyz, SIGHUP, restarts, graceful stop). What the workers share
 * through Redis (sessions, routing between them) is in workers-shared.test.ts.
 */

const keyPrefix = `${uniqueName('workers')}:`;
const exchange = uniqueName('workers');
const LISTENER_TYPES = ['tcp', 'ws', 'tls', 'wss'] as const;
let certs: TestCertificates;
let workers: WorkersProcess;
let consumer: TestConsumer;
const clients: MqttClient[] = [];

function configFile(routingKey: string) {
  const files = { cert: certs.serverCert, key: certs.serverKey };
  return {
    mqtt: {
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0 },
        { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
        { type: 'tls', host: '127.0.0.1', port: 0, ...files },
        { type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', ...files },
      ],
      persistence: { type: 'redis', url: REDIS_URL, keyPrefix },
    },
    amqp: { url: AMQP_URL, exchanges: [transientExchange(exchange)] },
    uplink: [{ name: 'all', topic: '#', exchange, routingKey }],
    http: { host: '127.0.0.1', port: 0 },
    // `client connected` lines (debug) say which worker took each connection.
    log: { level: 'debug' },
    shutdownTimeoutMs: 5_000,
  };
}

function connect(type: (typeof LISTENER_TYPES)[number], clientId: string, options: Parameters<typeof connectClient>[1] = {}): Promise<MqttClient> {
  const tls = type === 'tls' || type === 'wss' ? { ca: certs.read(certs.ca), rejectUnauthorized: true } : {};
  return connectClient(workers.urls[type]!, { clientId, ...tls, ...options });
}

before(async () => {
  certs = makeCertificates('workers-test');
  await withChannel((channel) => channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: false }));
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
  workers = await startWorkers(configFile('{#}'), 2);
});

after(async () => {
  await Promise.all(clients.map((client) => client.endAsync(true).catch(() => {})));
  await killWorkers(workers);
  await consumer?.close();
  await deleteExchanges(exchange);
  await deleteRedisKeys(keyPrefix);
});

test('run --workers - two worker processes run beside the primary, and each log line says which process wrote it', () => {
  const pids = workers.workerPids();
  assert.deepEqual([...pids.keys()].sort(), [1, 2]);
  assert.equal(new Set([...pids.values(), workers.primaryPid]).size, 3, 'three distinct processes');
  for (const pid of pids.values()) assert.ok(alive(pid), `worker ${pid} runs`);
  const json = workers.lines.filter((line) => !('stderr' in line));
  assert.deepEqual([...new Set(json.map((line) => (line.role === 'worker' ? `worker ${String(line.worker)}` : String(line.role))))].sort(), ['primary', 'worker 1', 'worker 2']);
  for (const line of json) {
    assert.ok(line.role === 'primary' || line.role === 'worker', `a role on ${JSON.stringify(line)}`);
    if (line.role === 'worker') assert.equal(pids.get(Number(line.worker)), line.pid, `worker and pid on ${JSON.stringify(line)}`);
    else assert.equal(line.pid, workers.primaryPid);
  }
  assert.deepEqual(workers.lines.filter((line) => 'stderr' in line), []);
});

test('run --workers - a listener on port 0 gets one port that every worker listens on (the primary picks it)', () => {
  for (const type of LISTENER_TYPES) {
    const addresses = workers.lines.filter((line) => line.role === 'worker' && line.listener === type).map((line) => `${String(line.worker)} ${String(line.address)}`);
    assert.equal(addresses.length, 2, `${type}: ${addresses.join(', ')}`);
    const [first, second] = addresses.map((address) => address.split(' ')[1]);
    assert.equal(first, second, `${type}: both workers on one address`);
    assert.match(first!, /:\d{2,5}(\/mqtt)?$/);
    assert.doesNotMatch(first!, /:0(\/|$)/);
  }
});

test('run --workers - tcp, ws, tls and wss connections are spread over both workers and every QoS 1 publish reaches RabbitMQ', async () => {
  for (const type of LISTENER_TYPES) {
    for (let i = 0; i < 4; i++) {
      const clientId = uniqueName(`w-${type}-${i}`);
      const client = await connect(type, clientId);
      clients.push(client);
      await client.publishAsync(`spread/${type}/${i}`, `${type} ${i}`, { qos: 1 });
      await waitFor(() => workers.slotOf(clientId) !== undefined, `the log line of ${clientId}`);
    }
  }
  const received = await consumer.waitForCount(16);
  assert.deepEqual(received.map((message) => `${message.fields.routingKey} ${message.content.toString()}`).sort(), LISTENER_TYPES.flatMap((type) => [0, 1, 2, 3].map((i) => `spread.${type}.${i} ${type} ${i}`)).sort());
  for (const type of LISTENER_TYPES) {
    const slots = clients.filter((client) => client.options.clientId!.startsWith(`w-${type}-`)).map((client) => workers.slotOf(client.options.clientId!));
    assert.deepEqual([...new Set(slots)].sort(), [1, 2], `${type} connections on both workers: ${slots.join(', ')}`);
  }
});

test('run --workers - /metrics of the primary adds up the workers: connections, messages, workers running', async () => {
  for (const type of LISTENER_TYPES) assert.equal(await workers.metric('mqtt_amqp_bridge_mqtt_connections', { listener: type }), 4, type);
  assert.equal(await workers.metric('mqtt_amqp_bridge_uplink_messages_total', { rule: 'all', qos: '1' }), 16);
  assert.equal(await workers.metric('mqtt_amqp_bridge_amqp_connected'), 2, 'one AMQP connection per worker');
  assert.equal(await workers.metric('mqtt_amqp_bridge_workers', { state: 'running' }), 2);
  assert.equal(await workers.metric('mqtt_amqp_bridge_worker_restarts_total'), 0);
  assert.ok((await workers.metric('process_resident_memory_bytes')) > 0, "the workers' process metrics too");
  await Promise.all(clients.splice(0).map((client) => client.endAsync()));
  await waitFor(async () => (await workers.metric('mqtt_amqp_bridge_mqtt_connections')) === 0, 'every connection to be counted closed');
});

test('run --workers - /readyz of the primary is ready when every worker is, /healthz answers', async () => {
  const ready = await fetch(`${workers.http}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true, reasons: [], degraded: [] });
  const health = await fetch(`${workers.http}/healthz`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });
});

test('run --workers - SIGHUP to the primary reloads the file in every worker, and each says so', async () => {
  writeFileSync(workers.file, JSON.stringify(configFile('reloaded.{#}')));
  process.kill(workers.primaryPid, 'SIGHUP');
  await waitFor(() => workers.primaryLines(/^worker \d: configuration reloaded$/).length === 2, 'both workers to report their reload');
  for (const line of workers.primaryLines(/^worker \d: configuration reloaded$/)) assert.deepEqual(line.applied, ['uplink']);
  await waitFor(() => workers.lines.filter((line) => line.role === 'worker' && line.msg === 'configuration reloaded: uplink').length === 2, "both workers' own reload lines");
  assert.equal(await workers.metric('mqtt_amqp_bridge_config_reloads_total', { result: 'applied' }), 2);

  // Whichever worker a device lands on, the new rule routes its publish.
  const before = consumer.messages.length;
  const slots = new Set<number | undefined>();
  for (let i = 0; i < 4; i++) {
    const clientId = uniqueName(`w-reload-${i}`);
    const client = await connect('tcp', clientId);
    await client.publishAsync(`after/${i}`, 'x', { qos: 1 });
    await client.endAsync();
    slots.add(workers.slotOf(clientId));
  }
  assert.deepEqual([...slots].sort(), [1, 2]);
  const received = await consumer.waitForCount(before + 4);
  assert.deepEqual(received.slice(before).map((message) => message.fields.routingKey).sort(), ['reloaded.after.0', 'reloaded.after.1', 'reloaded.after.2', 'reloaded.after.3']);
});

test('run --workers - a killed worker is restarted, and its device reconnects to a worker and keeps publishing', async () => {
  const clientId = uniqueName('w-survivor');
  const device = await connect('tcp', clientId, { reconnectPeriod: 100 });
  clients.push(device);
  await waitFor(() => workers.slotOf(clientId) !== undefined, 'the device to be placed');
  const slot = workers.slotOf(clientId)!;
  const killed = workers.workerPids().get(slot)!;
  const before = consumer.messages.length;
  await device.publishAsync('survivor/before', '1', { qos: 1 });
  const reconnected = new Promise<void>((resolve) => device.once('connect', () => resolve()));

  process.kill(killed, 'SIGKILL');
  await reconnected;
  await device.publishAsync('survivor/after', '2', { qos: 1 });
  const received = await consumer.waitForCount(before + 2);
  assert.deepEqual(received.slice(before).map((message) => message.fields.routingKey), ['reloaded.survivor.before', 'reloaded.survivor.after']);
  assert.notEqual(workers.pidOf(clientId), killed, 'reconnected to a live worker');

  await waitFor(() => workers.workerPids().get(slot) !== killed, `worker ${slot} to be restarted`, 20_000);
  const died = workers.primaryLines(new RegExp(`^worker ${slot} \\(pid ${killed}\\) died \\(signal SIGKILL\\); restarting it in \\d+ ms$`));
  assert.equal(died.length, 1);
  assert.equal(workers.primaryLines(new RegExp(`^worker ${slot} restarted \\(pid \\d+\\)$`)).length, 1);
  assert.ok(alive(workers.workerPids().get(slot)!));
  assert.equal(await workers.metric('mqtt_amqp_bridge_worker_restarts_total'), 1);
  await waitFor(async () => (await fetch(`${workers.http}/readyz`)).status === 200, 'the primary to be ready again', 20_000);
  assert.equal(await workers.metric('mqtt_amqp_bridge_workers', { state: 'running' }), 2);
});

test('run --workers - SIGTERM stops every worker gracefully and the primary exits 0', async () => {
  const pids = [...workers.workerPids().values()];
  process.kill(workers.primaryPid, 'SIGTERM');
  assert.equal(await workers.exit, 0);
  for (const slot of [1, 2]) assert.equal(workers.primaryLines(`worker ${slot} stopped`).length, 1, `worker ${slot} stopped`);
  // Each worker's bridge stopped as a bridge does: with its totals.
  assert.deepEqual(workers.lines.filter((line) => line.role === 'worker' && line.msg === 'stopped').map((line) => line.pid).sort(), pids.sort());
  assert.equal(workers.primaryLines('stopped').length, 1);
  for (const pid of pids) assert.equal(alive(pid), false, `worker ${pid} ended`);
});

test('run --workers - a worker that cannot start (its port is taken) fails the run: exit 1, the others stopped', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const config = { ...configFile('{#}'), mqtt: { listeners: [{ type: 'tcp', host: '127.0.0.1', port }], persistence: { type: 'redis', url: REDIS_URL, keyPrefix } } };
    const file = `${workers.file}.taken.yaml`;
    writeFileSync(file, JSON.stringify(config));
    const failing = runBridgeProcess(['--config', file, '--workers', '2']);
    assert.equal(await failing.exit, 1);
    const primary = failing.lines.filter((line) => line.role === 'primary');
    assert.ok(primary.some((line) => typeof line.msg === 'string' && /^worker \d ended \(code 1\) before it ran: stopping the others$/.test(line.msg)), JSON.stringify(primary));
    assert.ok(failing.lines.some((line) => line.role === 'worker' && line.code === 'BRIDGE_ERR_LISTEN'));
    assert.ok(primary.some((line) => line.level === 60 && line.code === 'BRIDGE_ERR_WORKER_START'), 'the primary ends with a fatal line');
  } finally {
    blocker.close();
  }
});

test('run --workers --watch - a change of the file reloads every worker; the primary killed, the workers stop on their own', async () => {
  const watched = await startWorkers(configFile('{#}'), 2, { args: ['--watch'] });
  try {
    writeFileSync(watched.file, JSON.stringify(configFile('watched.{#}')));
    await waitFor(() => watched.primaryLines(/^worker \d: configuration reloaded$/).length === 2, 'both workers to reload the changed file');
    assert.deepEqual(watched.lines.filter((line) => line.role === 'worker' && line.msg === 'reloading the configuration').map((line) => line.why), ['file changed', 'file changed']);

    const pids = [...watched.workerPids().values()];
    watched.child.kill('SIGKILL');
    await watched.exit;
    // No worker outlives its primary: each notices the closed channel and stops gracefully.
    await waitFor(() => pids.every((pid) => !alive(pid)), 'the orphaned workers to end', 20_000);
  } finally {
    await killWorkers(watched);
  }
});
