import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { configSchema, type BridgeConfig, type BridgeConfigInput } from '../../src/config/schema.js';
import { Amqp10TestClient, freePort, QpidBroker, type Received } from '../helpers/amqp10.js';
import { delay, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, startTestBridge, type TestBridge } from '../helpers/bridge.js';
import { StallProxy } from '../helpers/stall-proxy.js';

/**
 * Reload and faults with AMQP 1.0, against the Qpid Proton example broker: rules added, changed
 * and removed attach and detach links while the devices stay connected; the connection cut
 * mid-stream loses no acknowledged message.
 */
let broker: QpidBroker;
let client: Amqp10TestClient;

before(async () => {
  broker = await QpidBroker.start();
  client = await Amqp10TestClient.connect({ port: broker.port });
});

after(async () => {
  await client?.close();
  await broker?.kill();
});

function configWith(base: BridgeConfig, changes: Partial<BridgeConfigInput>): BridgeConfig {
  return configSchema.parse({ ...base, ...changes });
}

test('reload - uplink and downlink rules added, changed and removed: links follow, the devices stay connected', async () => {
  const [up1, up2, down1, down2] = ['up1', 'up2', 'down1', 'down2'].map((name) => uniqueName(name)) as [string, string, string, string];
  const bridge: TestBridge = await startTestBridge({
    amqp: { protocol: '1.0', url: broker.url },
    uplink: [{ name: 'up', topic: 'u/#', address: up1, subject: 'old.{#}' }],
    downlink: [{ name: 'one', address: down1, topic: 'cmd/one/{subject}' }],
  });
  try {
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    let closed = 0;
    device.on('close', () => closed++);
    const got: string[] = [];
    device.on('message', (topic, payload) => got.push(`${topic}=${payload.toString()}`));
    await device.subscribeAsync('cmd/#', { qos: 1 });
    const atUp1 = await client.receive(up1);
    const atUp2 = await client.receive(up2);
    await device.publishAsync('u/a', 'before', { qos: 1 });
    await client.send(down1, { subject: 'x', body: 'first' });
    await waitFor(() => atUp1.length === 1 && got.length === 1, 'the first round');

    const result = await bridge.bridge.reload(
      configWith(bridge.config, {
        uplink: [{ name: 'up', topic: 'u/#', address: up2, subject: 'new.{#}' }],
        downlink: [{ name: 'two', address: down2, topic: 'cmd/two/{subject}' }],
      }),
    );
    assert.deepEqual(result, { applied: ['uplink', 'downlink'], restartRequired: [] });
    await device.publishAsync('u/b', 'after', { qos: 1 });
    await waitFor(() => atUp2.length === 1, 'the publish at the new address');
    await client.send(down2, { subject: 'y', body: 'second' });
    await client.send(down1, { subject: 'z', body: 'to the removed rule' });
    await waitFor(() => got.length === 2, 'the command of the added rule');
    await delay(300);
    assert.deepEqual(got, ['cmd/one/x=first', 'cmd/two/y=second'], 'the removed rule receives nothing more');
    assert.deepEqual(subjects(atUp1), ['old.a']);
    assert.deepEqual(subjects(atUp2), ['new.b']);
    assert.equal(closed, 0, 'the device stayed connected');
    await device.endAsync();
  } finally {
    await bridge.stop();
  }
});

test('reload - a configuration of the other protocol is refused as a whole; the bridge runs on', async () => {
  const address = uniqueName('kept');
  const bridge = await startTestBridge({ amqp: { protocol: '1.0', url: broker.url }, uplink: [{ name: 'up', topic: '#', address }] });
  try {
    const next = configSchema.parse({ ...bridge.config, amqp: { ...bridge.config.amqp, protocol: '0-9-1' }, uplink: [{ name: 'up', topic: '#', exchange: 'amq.topic' }] }) as BridgeConfig;
    await assert.rejects(bridge.bridge.reload(next), { code: 'BRIDGE_ERR_STATE', message: /amqp\.protocol changes from "1\.0" to "0-9-1" only at a restart/ });
    const received = await client.receive(address);
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    await device.publishAsync('still/here', 'ok', { qos: 1 });
    await waitFor(() => received.length === 1, 'the publish at the address of the rules in force');
    await device.endAsync();
  } finally {
    await bridge.stop();
  }
});

test('faults - the connection to the broker cut twice mid-stream: every acknowledged QoS 1 message is at the broker', async () => {
  const address = uniqueName('stream');
  const proxy = await StallProxy.start(broker.port);
  const bridge = await startTestBridge({
    amqp: { protocol: '1.0', url: `amqp://127.0.0.1:${proxy.port}`, reconnect: { initialDelayMs: 50, maxDelayMs: 300 }, publishTimeoutMs: 30_000 },
    uplink: [{ name: 'stream', topic: 's/#', address, subject: '{#}' }],
  });
  try {
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev'), reconnectPeriod: 100 });
    const acked = new Set<string>();
    const TOTAL = 300;
    const received = await client.receive(address);
    const stream = (async () => {
      for (let i = 0; i < TOTAL; i++) {
        device.publish(`s/${i}`, String(i), { qos: 1 }, (error) => {
          if (!error) acked.add(String(i));
        });
        if (i % 20 === 0) await delay(10);
      }
    })();
    await waitFor(() => received.length >= 60, 'a fifth of the stream at the broker');
    proxy.cut();
    await waitFor(() => received.length >= 150, 'half of the stream at the broker');
    proxy.cut();
    await stream;
    await waitFor(() => acked.size === TOTAL, () => `${TOTAL} PUBACKs, got ${acked.size}`, 30_000);
    const atBroker = () => new Set(received.map(({ message }) => bodyOf(message)));
    await waitFor(() => [...acked].every((id) => atBroker().has(id)), () => `every acknowledged message at the broker (missing ${[...acked].filter((id) => !atBroker().has(id)).length})`);
    await device.endAsync();
  } finally {
    await bridge.stop();
    await proxy.close();
  }
});

test('faults - a broker not there at start: not ready, reconnect attempts with backoff; the broker comes: ready, and a publish waiting meanwhile goes through', async () => {
  const port = await freePort();
  const address = uniqueName('late');
  const bridge = await startTestBridge(
    { amqp: { protocol: '1.0', url: `amqp://127.0.0.1:${port}`, reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, publishTimeoutMs: 30_000 }, uplink: [{ name: 'late', topic: '#', address }] },
    { waitForReady: false },
  );
  const late = new QpidBroker(port);
  try {
    assert.deepEqual(bridge.bridge.readiness().reasons, ['amqp: connecting']);
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    let acked = false;
    const published = device.publishAsync('before/start', 'waited', { qos: 1 }).then(() => (acked = true));
    await delay(500);
    assert.equal(acked, false, 'no PUBACK while there is no broker');
    await late.restart();
    await bridge.bridge.ready();
    await published;
    const lateClient = await Amqp10TestClient.connect({ port });
    const received = await lateClient.receive(address);
    await waitFor(() => received.length === 1, 'the waiting publish at the late broker');
    assert.equal(bodyOf(received[0]!.message), 'waited');
    await device.endAsync();
    await lateClient.close();
  } finally {
    await bridge.stop();
    await late.kill();
  }
});

function subjects(received: readonly Received[]): string[] {
  return received.map(({ message }) => String(message.subject));
}

function bodyOf(message: Received['message']): string {
  const body = message.body as { content?: Buffer };
  return body.content?.toString() ?? '';
}
