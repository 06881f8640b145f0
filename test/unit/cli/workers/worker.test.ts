import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import type { FromWorker, ToWorker } from '../../../../src/cli/workers/messages.js';
import { runWorker, type PrimaryChannel } from '../../../../src/cli/workers/worker.js';
import { listen } from '../../../../src/util/listen.js';
import { waitFor } from '../../../helpers/amqp.js';

/** The primary's side of a worker's channel: what the worker sent, and a way to tell it things. */
function fakePrimary() {
  const sent: FromWorker[] = [];
  let deliver: (message: unknown) => void = () => {};
  let stop: () => void = () => {};
  const channel: PrimaryChannel = {
    send: (message) => sent.push(JSON.parse(JSON.stringify(message)) as FromWorker),
    onMessage: (listener) => (deliver = listener),
    onStop: (listener) => (stop = listener),
  };
  return { channel, sent, tell: (message: ToWorker | { type: string; requestId?: number }) => deliver(message), stopOnItsOwn: () => stop() };
}

function io() {
  const stderr = new PassThrough();
  let errors = '';
  stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  return { io: { stdout: new PassThrough(), stderr, env: {} }, errors: () => errors };
}

function configFile(routingKey: string, httpPort = 0): string {
  return JSON.stringify({
    mqtt: { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], persistence: { type: 'redis' } },
    // Nothing listens on port 1: the bridge runs, connecting in the background.
    amqp: { url: 'amqp://127.0.0.1:1' },
    uplink: [{ name: 'all', topic: '#', exchange: 'x', routingKey }],
    http: { host: '127.0.0.1', port: httpPort },
    log: { level: 'silent' },
    shutdownTimeoutMs: 0,
  });
}

const answer = async <T extends FromWorker['type']>(sent: FromWorker[], type: T, id?: number) => {
  const find = () => sent.find((message) => message.type === type && (id === undefined || (message as { id?: number }).id === id)) as Extract<FromWorker, { type: T }> | undefined;
  await waitFor(() => find() !== undefined, `the worker's ${type}`);
  return find()!;
};

test('runWorker - says hello, runs the bridge it is told to (without an HTTP endpoint), answers readiness, metrics and reloads, and stops when told', async () => {
  // The configuration's HTTP port is taken: a worker that served one of its own would fail to start.
  const blocker = createServer();
  const httpPort = await listen(blocker, 0, '127.0.0.1');
  after(() => blocker.close());
  const file = join(mkdtempSync(join(tmpdir(), 'worker-')), 'bridge.yaml');
  writeFileSync(file, configFile('{#}', httpPort));
  const primary = fakePrimary();
  const { io: commandIo } = io();
  const running = runWorker(commandIo, primary.channel);
  await answer(primary.sent, 'bridge:hello');
  primary.tell({ type: 'prom-client:getMetricsReq', requestId: 1 }); // not ours: ignored
  primary.tell({ type: 'bridge:start', settings: { slot: 3, file, ports: [null], pretty: false } });
  await answer(primary.sent, 'bridge:running');

  primary.tell({ type: 'bridge:readiness', id: 1 });
  const readiness = await answer(primary.sent, 'bridge:readiness', 1);
  assert.equal(readiness.readiness.ready, false);
  assert.ok(readiness.readiness.reasons.some((reason) => reason.startsWith('amqp: ')), readiness.readiness.reasons.join(', '));

  primary.tell({ type: 'bridge:metrics', id: 2 });
  const metrics = await answer(primary.sent, 'bridge:metrics', 2);
  assert.ok(metrics.metrics.some((metric) => metric.name === 'mqtt_amqp_bridge_uplink_messages_total'));
  assert.ok(metrics.metrics.some((metric) => metric.name === 'process_resident_memory_bytes'));

  writeFileSync(file, configFile('changed.{#}', httpPort));
  primary.tell({ type: 'bridge:reload', id: 3, why: 'test' });
  assert.deepEqual((await answer(primary.sent, 'bridge:reloaded', 3)).outcome, { result: 'applied', applied: ['uplink'], restartRequired: [] });
  writeFileSync(file, 'mqtt: [');
  primary.tell({ type: 'bridge:reload', id: 4, why: 'test' });
  assert.deepEqual((await answer(primary.sent, 'bridge:reloaded', 4)).outcome, { result: 'invalid', problems: 1 });

  primary.tell({ type: 'bridge:stop' });
  assert.equal(await running, 0);
});

test('runWorker - told to stop (or the primary gone) before it was told to start: exits 0 having started nothing', async () => {
  const primary = fakePrimary();
  const running = runWorker(io().io, primary.channel);
  await answer(primary.sent, 'bridge:hello');
  primary.stopOnItsOwn();
  assert.equal(await running, 0);
  assert.deepEqual(primary.sent.map((message) => message.type), ['bridge:hello']);
});

test('runWorker - a configuration that became invalid before it started: the problems on stderr, exit 1', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'worker-')), 'bridge.yaml');
  writeFileSync(file, 'mqtt:\n  listeners: 3\n');
  const primary = fakePrimary();
  const { io: commandIo, errors } = io();
  const running = runWorker(commandIo, primary.channel);
  primary.tell({ type: 'bridge:start', settings: { slot: 1, file, ports: [], pretty: false } });
  assert.equal(await running, 1);
  assert.match(errors(), new RegExp(`^${file}:2:\\d+: `));
  assert.deepEqual(primary.sent.map((message) => message.type), ['bridge:hello']);
});

test('runWorker - a bridge that cannot start (its port taken) exits 1 without saying it runs', async () => {
  const blocker = createServer();
  const port = await listen(blocker, 0, '127.0.0.1');
  try {
    const file = join(mkdtempSync(join(tmpdir(), 'worker-')), 'bridge.yaml');
    writeFileSync(file, configFile('{#}'));
    const primary = fakePrimary();
    const { io: commandIo, errors } = io();
    const running = runWorker(commandIo, primary.channel);
    // The port the primary picked for the listener's port 0 is taken meanwhile.
    primary.tell({ type: 'bridge:start', settings: { slot: 1, file, ports: [port], pretty: false } });
    assert.equal(await running, 1);
    assert.equal(errors(), '', 'the configuration was valid');
    assert.deepEqual(primary.sent.map((message) => message.type), ['bridge:hello']);
  } finally {
    blocker.close();
  }
});
