import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createClusterEmitter, type ClusterEmitter, type ClusterEmitterOptions, type EmitterListener } from '../../../../src/mqtt/cluster/cluster-emitter.js';
import type { EmittedPacket } from '../../../../src/mqtt/cluster/packet-frame.js';
import { silentLogger } from '../../../../src/observability/logger.js';
import { delay, waitFor } from '../../../helpers/amqp.js';
import { deleteKeys, keysUnder, OwnRedisServer, RecordedConnections, redisSettings } from '../../../helpers/cluster.js';
import { freePort } from '../../../helpers/bridge-process.js';

const settings = redisSettings();
const running: ClusterEmitter[] = [];

async function instance(name: string, timeoutMs = 10_000, more: Partial<ClusterEmitterOptions> = {}) {
  const connections = new RecordedConnections(settings);
  const emitter = await createClusterEmitter({ settings, logger: silentLogger(), instanceTimeoutMs: timeoutMs, instanceId: `${name}-${process.pid}`, connect: connections.connect, ...more });
  running.push(emitter);
  return { emitter, connections };
}

/** A listener that records what it gets. */
function recorder() {
  const packets: Array<Record<string, unknown>> = [];
  const listener: EmitterListener = (packet: Record<string, unknown>, done) => {
    packets.push(packet);
    done();
  };
  return { packets, listener };
}

const on = (emitter: ClusterEmitter, topic: string, listener: EmitterListener) => new Promise<void>((resolve) => emitter.on(topic, listener, resolve));
const emit = (emitter: ClusterEmitter, packet: EmittedPacket) => new Promise<Error | undefined>((resolve) => emitter.emit(packet, resolve));
const close = (emitter: ClusterEmitter) => new Promise<void>((resolve) => emitter.close(resolve));
/** Waits until `emitter` knows `count` filters of other instances. */
const knows = (emitter: ClusterEmitter, count: number) => waitFor(() => emitter.stats().remoteFilters === count, () => `${count} remote filters (have ${emitter.stats().remoteFilters})`);

after(async () => {
  await Promise.all(running.map(close));
  await deleteKeys(settings.keyPrefix);
});

test('cluster emitter - a publish reaches this instance\'s listeners and exactly the other instances with a matching filter, fields intact', async () => {
  const a = await instance('a');
  const b = await instance('b');
  const c = await instance('c');
  const onA = recorder();
  const onB = recorder();
  const onC = recorder();
  await on(a.emitter, 'devices/+/commands', onA.listener);
  await on(b.emitter, 'devices/#', onB.listener);
  await on(c.emitter, 'other/#', onC.listener);
  await knows(a.emitter, 2);
  await knows(c.emitter, 2);
  const payload = Buffer.from([0, 1, 0xfe, 0xff]);
  const error = await emit(a.emitter, { topic: 'devices/d1/commands', payload, qos: 1, retain: false, dup: false, brokerId: 'broker-a', brokerCounter: 7, clientId: 'dev-1' });
  assert.equal(error, undefined);
  await waitFor(() => onB.packets.length === 1, 'B to receive it');
  assert.equal(onA.packets.length, 1);
  assert.deepEqual(onB.packets[0], { cmd: 'publish', topic: 'devices/d1/commands', payload, qos: 1, retain: false, dup: false, brokerId: 'broker-a', brokerCounter: 7, clientId: 'dev-1' });
  await delay(100);
  assert.equal(onC.packets.length, 0);
  assert.equal(c.emitter.stats().received, 0, 'C was sent nothing');
  assert.deepEqual([a.emitter.stats().sent, b.emitter.stats().received, b.emitter.stats().sent], [1, 1, 0], 'B delivered it locally and sent nothing on');
});

test('cluster emitter - a publish no other instance wants costs no Redis command', async () => {
  const a = await instance('quiet-a');
  const b = await instance('quiet-b');
  const onA = recorder();
  const baseline = a.emitter.stats().remoteFilters;
  await on(a.emitter, 'telemetry/#', onA.listener);
  await on(b.emitter, 'commands/#', recorder().listener);
  await knows(a.emitter, baseline + 1);
  const before = a.connections.commands.length;
  for (let i = 0; i < 100; i++) assert.equal(await emit(a.emitter, { topic: `telemetry/${i}`, payload: Buffer.from('x'), qos: 1 }), undefined);
  assert.equal(onA.packets.length, 100);
  assert.deepEqual(a.connections.since(before), []);
  await emit(a.emitter, { topic: 'commands/1', payload: Buffer.from('x'), qos: 1 });
  assert.deepEqual(a.connections.since(before), ['publish'], 'one PUBLISH for the one publish B wants');
});

test('cluster emitter - a filter is a route while one local listener holds it', async () => {
  const a = await instance('ref-a');
  const b = await instance('ref-b');
  const [one, two] = [recorder(), recorder()];
  const baseline = a.emitter.stats().remoteFilters;
  await on(b.emitter, 'shared/#', one.listener);
  await on(b.emitter, 'shared/#', two.listener);
  await knows(a.emitter, baseline + 1);
  await new Promise<void>((resolve) => b.emitter.removeListener('shared/#', one.listener, resolve));
  await emit(a.emitter, { topic: 'shared/x', payload: Buffer.from('1') });
  await waitFor(() => two.packets.length === 1, 'the remaining listener to receive it');
  await new Promise<void>((resolve) => b.emitter.removeListener('shared/#', two.listener, resolve));
  await knows(a.emitter, baseline);
  const sent = a.emitter.stats().sent;
  await emit(a.emitter, { topic: 'shared/x', payload: Buffer.from('2') });
  assert.equal(a.emitter.stats().sent, sent, 'nothing is sent once the last listener left');
  assert.equal(one.packets.length, 0);
});

test('cluster emitter - $SYS messages a listener takes go to every instance, once each, without a route; others go nowhere', async () => {
  const a = await instance('sys-a');
  const b = await instance('sys-b');
  const onA = recorder();
  const onB = recorder();
  await on(a.emitter, '$SYS/+/new/clients', onA.listener);
  await on(b.emitter, '$SYS/+/new/clients', onB.listener);
  await waitFor(() => a.emitter.stats().instances >= 1 && b.emitter.stats().instances >= 1, 'each to know the other');
  await emit(a.emitter, { topic: '$SYS/broker-a/new/clients', payload: 'device-1' });
  await waitFor(() => onB.packets.length === 1, 'B to get it');
  await delay(100);
  assert.equal(onA.packets.length, 1, 'A gets its own once (its echo from Redis is ignored)');
  assert.deepEqual(onB.packets[0]!.payload, Buffer.from('device-1'));
  const sent = a.emitter.stats().sent;
  await emit(a.emitter, { topic: '$SYS/broker-a/new/subscribes', payload: '{}' });
  assert.equal(a.emitter.stats().sent, sent, 'no instance listens to it');
});

test('cluster emitter - an instance that stops gracefully leaves at once; one killed is removed after its heartbeat expires', async () => {
  const observer = await instance('obs');
  const graceful = await instance('graceful');
  const killed = await instance('killed', 600);
  const baseline = observer.emitter.stats().remoteFilters;
  await on(graceful.emitter, 'g/#', recorder().listener);
  await on(killed.emitter, 'k/#', recorder().listener);
  await knows(observer.emitter, baseline + 2);
  await close(graceful.emitter);
  await knows(observer.emitter, baseline + 1);
  killed.connections.cut();
  await knows(observer.emitter, baseline);
  assert.ok(!(await keysUnder(settings.keyPrefix)).some((key) => key.includes('killed')), 'its keys are gone from Redis');
});

test('cluster emitter - after its connection to Redis comes back, an instance reads the changes it missed and registers its own again', async () => {
  const a = await instance('re-a');
  const b = await instance('re-b');
  const onA = recorder();
  const before = b.emitter.stats().remoteFilters;
  // B's notices are lost while A's subscriber is down: A must read them after it reconnects.
  a.connections.made[1]!.stream.destroy();
  await waitFor(() => !a.emitter.health().ready, 'A to notice');
  assert.match(a.emitter.health().reason ?? '', /Redis unreachable/);
  const onB = recorder();
  await on(b.emitter, 'missed/#', onB.listener);
  await on(a.emitter, 'back/#', onA.listener);
  await waitFor(() => a.emitter.health().ready, 'A to be ready again', 15_000);
  await knows(b.emitter, before + 1);
  await emit(a.emitter, { topic: 'missed/1', payload: Buffer.from('m') });
  await waitFor(() => onB.packets.length === 1, 'B to get what A sends on a route A learnt while away');
  await emit(b.emitter, { topic: 'back/1', payload: Buffer.from('b') });
  await waitFor(() => onA.packets.length === 1, 'A to get what B sends on a route A announced while away');
});

test('cluster emitter - Redis away: a downlink publish (no client) for another instance fails; a device\'s is delivered locally and counted', async () => {
  const a = await instance('down-a');
  const b = await instance('down-b');
  const local = recorder();
  const baseline = a.emitter.stats().remoteFilters;
  await on(a.emitter, 'cmd/#', local.listener);
  await on(b.emitter, 'cmd/#', recorder().listener);
  await knows(a.emitter, baseline + 1);
  for (const redis of a.connections.made) redis.disconnect();
  const downlink = await emit(a.emitter, { topic: 'cmd/1', payload: Buffer.from('x'), qos: 1 });
  assert.equal((downlink as { code?: string } | undefined)?.code, 'BRIDGE_ERR_CLUSTER_UNAVAILABLE');
  const fromDevice = await emit(a.emitter, { topic: 'cmd/2', payload: Buffer.from('y'), qos: 1, clientId: 'dev' });
  assert.equal(fromDevice, undefined);
  assert.equal(local.packets.length, 2, 'local listeners got both');
  assert.equal(a.emitter.stats().sendFailed, 2);
  await waitFor(() => !a.emitter.health().ready, 'health to say so');
  assert.match(a.emitter.health().reason ?? '', /Redis unreachable/);
});

test('cluster emitter - it does not start when Redis cannot be reached (BRIDGE_ERR_CLUSTER_UNAVAILABLE)', async () => {
  const port = await freePort();
  await assert.rejects(
    createClusterEmitter({ settings: { ...settings, url: `redis://127.0.0.1:${port}/0` }, logger: silentLogger() }),
    (error: Error & { code?: string }) => error.code === 'BRIDGE_ERR_CLUSTER_UNAVAILABLE' && error.message.includes(`127.0.0.1:${port}`),
  );
});

test('cluster emitter - Redis restarted empty: every instance registers its routes again and publishes cross again', async () => {
  const server = await OwnRedisServer.start();
  const own = { ...settings, url: server.url };
  const make = (name: string) => createClusterEmitter({ settings: own, logger: silentLogger(), instanceTimeoutMs: 3_000, instanceId: `${name}-${process.pid}` });
  const [a, b] = [await make('restart-a'), await make('restart-b')];
  try {
    const onB = recorder();
    await on(b, 'r/#', onB.listener);
    await knows(a, 1);
    await server.kill();
    await waitFor(() => !a.health().ready && !b.health().ready, 'both to see Redis gone');
    await server.restart();
    await waitFor(() => a.health().ready && b.health().ready, 'both to be ready again', 15_000);
    await knows(a, 1);
    await emit(a, { topic: 'r/1', payload: Buffer.from('after the restart') });
    await waitFor(() => onB.packets.length === 1, 'B to receive it');
    assert.deepEqual(onB.packets[0]!.payload, Buffer.from('after the restart'));
  } finally {
    await Promise.all([close(a), close(b)]);
    await server.kill();
  }
});

test('cluster emitter - received publishes waiting for local delivery are bounded: past the bound they are dropped and counted; unreadable ones are counted', async () => {
  const a = await instance('bound-a');
  const b = await instance('bound-b', 10_000, { concurrency: 1, maxQueuedReceived: 2 });
  const baseline = a.emitter.stats().remoteFilters;
  const held: Array<() => void> = [];
  // A stuck local delivery: B's emitter takes one at a time and this listener never finishes.
  await on(b.emitter, 'slow/#', (_packet, done) => held.push(done));
  await knows(a.emitter, baseline + 1);
  for (let i = 0; i < 6; i++) await emit(a.emitter, { topic: 'slow/1', payload: Buffer.from(String(i)) });
  await waitFor(() => b.emitter.stats().received + b.emitter.stats().receivedDropped === 6, 'B to take all six');
  assert.deepEqual([b.emitter.stats().received, b.emitter.stats().receivedDropped], [3, 3], 'one delivering, two waiting, three dropped');
  held.splice(0).forEach((done) => done());
  await a.connections.made[0]!.publish(`${settings.keyPrefix}cluster:to:${b.emitter.instanceId}`, Buffer.from('not a frame'));
  await waitFor(() => b.emitter.stats().malformed === 1, 'the unreadable message to be counted');
});
