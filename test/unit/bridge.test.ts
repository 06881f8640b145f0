import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { Bridge } from '../../src/bridge.js';
import type { BridgeParts, BrokerSide, MqttSide } from '../../src/bridge-parts.js';
import { HttpListenError } from '../../src/errors.js';
import { configSchema, type BridgeConfig, type BridgeConfigInput } from '../../src/config/schema.js';
import type { RunningListener } from '../../src/mqtt/listeners/listener.js';
import type { BrokerRefusal, BrokerState } from '../../src/ports.js';

/** A promise settled from outside, for a step that must not finish until the test says so. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

type Step = () => unknown;

/**
 * Fakes of the MQTT server, the broker back end and the HTTP endpoint that write what is done to
 * them into one log, in order; each call can be made to fail or to wait.
 */
function fakeParts(overrides: Partial<Record<string, Step>> = {}) {
  const log: string[] = [];
  const act = async (name: string) => {
    log.push(name);
    await overrides[name]?.();
  };
  const listeners: RunningListener[] = [];
  const mqtt: MqttSide = {
    listeners,
    listen: async (configured) => {
      await act('mqtt.listen');
      for (const { type, host, port } of configured) listeners.push({ type, host, port, url: `${type}://${host}:${port}`, stopAccepting: async () => {} });
      return listeners;
    },
    stopAccepting: () => act('mqtt.stopAccepting'),
    pauseClients: () => void log.push('mqtt.pauseClients'),
    close: () => act('mqtt.close'),
    reloadCertificates: () => {
      log.push('mqtt.reloadCertificates');
      return 0;
    },
    connectionsByListener: () => ({}),
    bufferedBytes: () => ({ unauthenticated: 0, authenticated: 0 }),
    sessionCounts: () => ({ connected: 0, offline: 0 }),
    retainedUsage: () => ({ messages: 0, bytes: 0 }),
    unreadyReasons: () => [],
    sharedState: () => null,
    publishToDevices: (_message, done) => done(null),
  };
  class FakeBroker extends EventEmitter implements BrokerSide {
    state: BrokerState = 'connecting';
    readonly server = 'amqp://fake';
    readonly publisher = {
      pendingMessages: 0,
      pendingBytes: 0,
      publish: () => assert.fail('nothing publishes in these tests'),
      close: () => act('publisher.close'),
    };
    start = () => act('broker.start');
    waitForConnect = () => act('broker.waitForConnect');
    reconfigureExchanges = () => act('broker.reconfigureExchanges');
    reconfigureDownlink = () => act('broker.reconfigureDownlink');
    stopConsuming = () => act('broker.stopConsuming');
    close = () => act('broker.close');
    refusals: BrokerRefusal[] = [];
    refused = () => this.refusals;
  }
  const broker = new FakeBroker();
  const parts: BridgeParts = {
    createMqtt: async () => {
      await act('createMqtt');
      return mqtt;
    },
    createBroker: () => broker,
    startHttp: async () => {
      await act('http.start');
      return { port: 9, url: 'http://fake:9', close: () => act('http.close') };
    },
  };
  return { parts, log, broker, mqtt };
}

const config = (input: BridgeConfigInput = {}) => configSchema.parse({ http: { port: 0 }, ...input }) as BridgeConfig;
const bridgeWith = (parts: BridgeParts, input?: BridgeConfigInput) => new Bridge({ config: config(input), parts, processMetrics: false });

const TEARDOWN = ['mqtt.stopAccepting', 'mqtt.pauseClients', 'broker.stopConsuming', 'publisher.close', 'mqtt.close', 'broker.close', 'http.close'];

test('Bridge - starts the MQTT side, then the broker, then the HTTP endpoint; a stop undoes them in order', async () => {
  const { parts, log } = fakeParts();
  const bridge = bridgeWith(parts);
  assert.equal(bridge.state, 'idle');
  await bridge.start();
  assert.equal(bridge.state, 'running');
  assert.deepEqual(log.splice(0), ['createMqtt', 'mqtt.listen', 'broker.start', 'http.start']);
  await bridge.stop();
  assert.equal(bridge.state, 'stopped');
  assert.deepEqual(log, TEARDOWN);
  await bridge.stop();
  assert.deepEqual(log, TEARDOWN, 'a second stop does nothing');
});

for (const [failing, started] of [
  ['createMqtt', []],
  ['mqtt.listen', ['createMqtt']],
  ['broker.start', ['createMqtt', 'mqtt.listen']],
  ['http.start', ['createMqtt', 'mqtt.listen', 'broker.start']],
] as const) {
  test(`Bridge - when ${failing} fails, start rejects with its error and what was started is undone the same way as by a stop`, async () => {
    const failure = new Error(`${failing} failed`);
    const { parts, log } = fakeParts({
      [failing]: () => {
        throw failure;
      },
    });
    const bridge = bridgeWith(parts);
    await assert.rejects(bridge.start(), (error: Error) => error === failure || (error as { cause?: unknown }).cause === failure);
    assert.equal(bridge.state, 'stopped');
    const mqttMade = failing !== 'createMqtt';
    assert.deepEqual(log, [
      ...started,
      failing,
      ...TEARDOWN.filter((step) => (mqttMade || !step.startsWith('mqtt.')) && step !== 'http.close'),
    ]);
    await assert.rejects(bridge.start(), { code: 'BRIDGE_ERR_STATE' });
  });
}

test('Bridge - the HTTP endpoint failing to listen rejects the start with its own error (BRIDGE_ERR_HTTP_LISTEN) and undoes the rest', async () => {
  const refused = new HttpListenError('http endpoint cannot listen on 127.0.0.1:9102: EADDRINUSE');
  const { parts, log } = fakeParts({
    'http.start': () => {
      throw refused;
    },
  });
  await assert.rejects(bridgeWith(parts, { http: { host: '127.0.0.1', port: 9102 } }).start(), refused);
  assert.ok(log.includes('broker.close') && log.includes('mqtt.close'));
});

for (const waitingAt of ['createMqtt', 'mqtt.listen', 'broker.start', 'http.start']) {
  test(`Bridge - a stop while the start waits at ${waitingAt}: the start is abandoned there, undone, and rejects; the stop resolves once all is undone`, async () => {
    const gate = deferred();
    const { parts, log } = fakeParts({ [waitingAt]: () => gate.promise });
    const bridge = bridgeWith(parts);
    const starting = bridge.start();
    const startFailure = assert.rejects(starting, { code: 'BRIDGE_ERR_STATE', message: /stopped while it was starting/ });
    while (!log.includes(waitingAt)) await new Promise((resolve) => setImmediate(resolve));
    const stopping = bridge.stop();
    assert.equal(bridge.state, 'starting');
    gate.resolve();
    await stopping;
    await startFailure;
    assert.equal(bridge.state, 'stopped');
    assert.equal(log.includes('http.close'), waitingAt === 'http.start', 'the endpoint is closed once it was started');
    assert.equal(log.at(-1 - (waitingAt === 'http.start' ? 1 : 0)), 'broker.close');
    const after = log.indexOf(waitingAt) + 1;
    assert.equal(log[after], 'mqtt.stopAccepting', 'nothing more is started after the stop; what the step made is undone');
  });
}

test('Bridge - a step of the teardown that fails is logged and the later steps still run', async () => {
  const { parts, log } = fakeParts({
    'mqtt.close': () => {
      throw new Error('close failed');
    },
  });
  const bridge = bridgeWith(parts);
  await bridge.start();
  log.length = 0;
  await bridge.stop();
  assert.deepEqual(log, TEARDOWN);
  assert.equal(bridge.state, 'stopped');
});

test('Bridge - a stop before any start stops it for good', async () => {
  const { parts, log } = fakeParts();
  const bridge = bridgeWith(parts);
  await bridge.stop();
  assert.equal(bridge.state, 'stopped');
  await assert.rejects(bridge.start(), { code: 'BRIDGE_ERR_STATE' });
  assert.deepEqual(log, []);
});

test('Bridge - a reload asked for while starting waits and applies once running; while stopping or stopped it is refused', async () => {
  const gate = deferred();
  const { parts, log } = fakeParts({ 'broker.start': () => gate.promise });
  const bridge = bridgeWith(parts);
  const starting = bridge.start();
  const reloading = bridge.reload(config({ amqp: { exchanges: [{ name: 'added' }] } }));
  while (!log.includes('broker.start')) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(log.includes('broker.reconfigureExchanges'), false);
  gate.resolve();
  await starting;
  assert.deepEqual(await reloading, { applied: ['amqp.exchanges'], restartRequired: [] });
  const stopping = bridge.stop();
  await assert.rejects(bridge.reload(config()), { code: 'BRIDGE_ERR_STATE', message: /stopping/ });
  await stopping;
  await assert.rejects(bridge.reload(config()), { code: 'BRIDGE_ERR_STATE', message: /stopped/ });
});

test('Bridge - a stop waits for the reload under way (it may be starting consumers) before it tears down', async () => {
  const gate = deferred();
  const { parts, log } = fakeParts({ 'broker.reconfigureDownlink': () => gate.promise });
  const bridge = bridgeWith(parts);
  await bridge.start();
  log.length = 0;
  const reloading = bridge.reload(config({ log: { level: 'debug' } }));
  while (!log.includes('broker.reconfigureDownlink')) await new Promise((resolve) => setImmediate(resolve));
  const stopping = bridge.stop();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(log.includes('mqtt.stopAccepting'), false, 'the teardown has not begun');
  gate.resolve();
  assert.deepEqual(await reloading, { applied: ['log.level'], restartRequired: [] });
  await stopping;
  assert.deepEqual(log, ['broker.reconfigureExchanges', 'broker.reconfigureDownlink', 'mqtt.reloadCertificates', ...TEARDOWN]);
});

test('Bridge - reloads run one after another, and what needs a restart is reported and kept', async () => {
  const gate = deferred();
  let calls = 0;
  const { parts, log } = fakeParts({ 'broker.reconfigureExchanges': () => (++calls === 1 ? gate.promise : undefined) });
  const bridge = bridgeWith(parts, { mqtt: { maxPacketBytes: 2048 } });
  await bridge.start();
  log.length = 0;
  const first = bridge.reload(config({ mqtt: { maxPacketBytes: 4096 } }));
  const second = bridge.reload(config({ mqtt: { maxPacketBytes: 4096 }, log: { level: 'warn' } }));
  while (!log.includes('broker.reconfigureExchanges')) await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(log.filter((entry) => entry === 'broker.reconfigureExchanges').length, 1, 'the second waits for the first');
  gate.resolve();
  assert.deepEqual(await first, { applied: [], restartRequired: ['mqtt.maxPacketBytes'] });
  assert.deepEqual(await second, { applied: ['log.level'], restartRequired: ['mqtt.maxPacketBytes'] });
  await bridge.stop();
});

test('Bridge - what the broker refuses leaves the bridge ready, listed as degraded, and counted in amqp_refused', async () => {
  const { parts, broker } = fakeParts();
  const bridge = bridgeWith(parts);
  await bridge.start();
  broker.state = 'connected';
  broker.refusals = [
    { kind: 'exchange', name: 'telemetry', summary: 'exchange "telemetry" refused' },
    { kind: 'exchange', name: 'telemetry', summary: 'exchange "telemetry" refused for a downlink rule' },
    { kind: 'queue', name: 'commands', summary: 'queue "commands" refused' },
  ];
  assert.deepEqual(bridge.readiness(), {
    ready: true,
    reasons: [],
    degraded: ['exchange "telemetry" refused', 'exchange "telemetry" refused for a downlink rule', 'queue "commands" refused'],
  });
  assert.equal(await bridge.metrics.value('mqtt_amqp_bridge_amqp_refused', { kind: 'exchange' }), 1, 'one exchange, however many rules wait for it');
  assert.equal(await bridge.metrics.value('mqtt_amqp_bridge_amqp_refused', { kind: 'queue' }), 1);
  await bridge.stop();
});

test('Bridge - readiness and the metrics follow the shared state: Redis and the routing between instances', async () => {
  const { parts, broker, mqtt } = fakeParts();
  const bridge = bridgeWith(parts);
  await bridge.start();
  broker.state = 'connected';
  const cluster = { instances: 2, localFilters: 3, remoteFilters: 5, sent: 10, sendFailed: 1, unreceived: 0, received: 4, receivedDropped: 0, malformed: 0 };
  let shared = { ready: true, cluster };
  let unready: string[] = [];
  Object.assign(mqtt, { unreadyReasons: () => unready, sharedState: () => shared });
  assert.deepEqual(bridge.readiness(), { ready: true, reasons: [], degraded: [] });
  const value = (name: string, labels?: Record<string, string>) => bridge.metrics.value(`mqtt_amqp_bridge_${name}`, labels);
  assert.deepEqual(
    [await value('mqtt_state_ready', { store: 'redis' }), await value('cluster_instances'), await value('cluster_filters', { where: 'local' }), await value('cluster_filters', { where: 'remote' })],
    [1, 2, 3, 5],
  );
  assert.deepEqual([await value('cluster_messages_total', { direction: 'sent' }), await value('cluster_messages_lost_total', { reason: 'send_failed' })], [10, 1]);

  unready = ['mqtt state: Redis at redis://r:6379/0 is unreachable'];
  shared = { ready: false, cluster: { ...cluster, sent: 15, sendFailed: 3 } };
  assert.deepEqual(bridge.readiness(), { ready: false, reasons: unready, degraded: [] });
  assert.equal(await value('mqtt_state_ready', { store: 'redis' }), 0);
  assert.deepEqual([await value('cluster_messages_total', { direction: 'sent' }), await value('cluster_messages_lost_total', { reason: 'send_failed' })], [15, 3], 'the counters follow the running totals');
  assert.deepEqual([await value('cluster_messages_total', { direction: 'sent' })], [15], 'a second scrape adds nothing');
  await bridge.stop();
});

test('Bridge - with memory persistence the state is always ready and there is no routing between instances', async () => {
  const { parts, broker } = fakeParts();
  const bridge = bridgeWith(parts);
  await bridge.start();
  broker.state = 'connected';
  assert.equal(await bridge.metrics.value('mqtt_amqp_bridge_mqtt_state_ready', { store: 'memory' }), 1);
  assert.equal(await bridge.metrics.value('mqtt_amqp_bridge_mqtt_state_ready', { store: 'redis' }), 0);
  assert.equal(await bridge.metrics.value('mqtt_amqp_bridge_cluster_messages_total'), 0);
  await bridge.stop();
});

test('Bridge - readiness names what is not ready', async () => {
  const { parts, broker } = fakeParts();
  const bridge = bridgeWith(parts);
  assert.deepEqual(bridge.readiness(), { ready: false, reasons: ['bridge: idle', 'amqp: connecting'], degraded: [] });
  await bridge.start();
  broker.state = 'connected';
  assert.deepEqual(bridge.readiness(), { ready: true, reasons: [], degraded: [] });
  await bridge.stop();
  assert.deepEqual(bridge.readiness(), { ready: false, reasons: ['bridge: stopped'], degraded: [] });
});
