import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisSessionRegistry } from '../../../../src/mqtt/redis/session-registry.js';
import { RedisWills } from '../../../../src/mqtt/redis/wills.js';
import { uniqueName } from '../../../helpers/amqp.js';
import { connectRedis, deleteKeys, redisPersistence } from '../../../helpers/redis.js';

const connections: Redis[] = [];
const prefixes: string[] = [];

after(async () => {
  for (const redis of connections) redis.disconnect();
  for (const prefix of prefixes) await deleteKeys(prefix);
});

const SILENT_AFTER_MS = 30_000;

/** Instances on one fresh key prefix: each its wills and its registry (for its heartbeat). */
async function instances(count: number, clock: { now: number }) {
  const settings = redisPersistence(`${uniqueName('unit-wills')}:`);
  prefixes.push(settings.keyPrefix);
  const made = [];
  for (let i = 0; i < count; i++) {
    const redis = await connectRedis(settings);
    connections.push(redis);
    const options = { instanceId: `broker-${i}`, keyPrefix: settings.keyPrefix, now: () => clock.now };
    const registry = new RedisSessionRegistry(redis, options);
    await registry.heartbeat(true);
    made.push({ id: options.instanceId, wills: new RedisWills(redis, { ...options, silentAfterMs: SILENT_AFTER_MS }), registry });
  }
  return made;
}

const will = (topic: string) => ({ cmd: 'publish', topic, payload: Buffer.from(`gone: ${topic}`), qos: 1, retain: false });

async function claimed(wills: RedisWills): Promise<string[]> {
  const found: string[] = [];
  for await (const packet of wills.claimDead()) found.push(`${packet.brokerId} ${packet.clientId} ${packet.topic} ${packet.payload!.toString()}`);
  return found.sort();
}

test('redis wills - put, get and delete by the broker that holds them; a CONNECT that names no broker deletes nothing', async () => {
  const [a] = await instances(1, { now: 1_000 });
  await a!.wills.put('dev/1', will('w/1'));
  const stored = await a!.wills.get('dev/1');
  assert.deepEqual([stored?.topic, stored?.clientId, stored?.brokerId, stored?.payload?.toString()], ['w/1', 'dev/1', 'broker-0', 'gone: w/1']);
  assert.equal(await a!.wills.delete('dev/1', undefined), null);
  assert.equal((await a!.wills.delete('dev/1', 'broker-0'))?.topic, 'w/1');
  assert.equal(await a!.wills.get('dev/1'), null);
  assert.equal(await a!.wills.delete('dev/1', 'broker-0'), null);
});

test('redis wills - the wills of a dead instance go to one instance only, however many ask at once; a live one keeps its own', async () => {
  const clock = { now: 1_000 };
  const [dead, b, c, d] = await instances(4, clock);
  await dead!.wills.put('dev/1', will('w/1'));
  await dead!.wills.put('dev/2', will('w/2'));
  await b!.wills.put('dev/3', will('w/3'));
  assert.deepEqual(await claimed(c!.wills), [], 'nobody is silent yet');
  clock.now = 1_000 + SILENT_AFTER_MS + 1;
  for (const alive of [b!, c!, d!]) await alive.registry.heartbeat();
  const claims = await Promise.all([b!, c!, d!, b!, c!, d!].map((instance) => claimed(instance.wills)));
  const all = claims.flat();
  assert.deepEqual([...new Set(all)].sort(), ['broker-0 dev/1 w/1 gone: w/1', 'broker-0 dev/2 w/2 gone: w/2']);
  const holders = [b!, c!, d!].filter((_instance, i) => claims[i]!.length + claims[i + 3]!.length > 0);
  assert.equal(holders.length, 1, 'one instance took them');
  assert.ok(!all.some((line) => line.includes('dev/3')), "a live instance's wills stay its own");
  // aedes publishes each, then deletes it with the dead broker's id.
  const holder = holders[0]!;
  assert.equal((await holder.wills.delete('dev/1', 'broker-0'))?.topic, 'w/1');
  assert.deepEqual(await claimed(holder.wills), ['broker-0 dev/2 w/2 gone: w/2'], 'what it has not published yet it gives again');
  assert.equal(await dead!.registry.heartbeat(), false, 'the dead instance, back, learns it was condemned');
});

test('redis wills - an instance that dies holding the wills it took passes them on; a graceful stop drops its own clients\' wills only', async () => {
  const clock = { now: 1_000 };
  const [first, second, third] = await instances(3, clock);
  await first!.wills.put('dev/1', will('w/1'));
  clock.now += SILENT_AFTER_MS + 1;
  await second!.registry.heartbeat();
  await third!.registry.heartbeat();
  assert.equal((await claimed(second!.wills)).length, 1);
  await second!.wills.put('dev/2', will('w/2'));
  clock.now += SILENT_AFTER_MS + 1;
  await third!.registry.heartbeat();
  assert.deepEqual(await claimed(third!.wills), ['broker-0 dev/1 w/1 gone: w/1', 'broker-1 dev/2 w/2 gone: w/2'], 'the second died too: the third has both');
  await third!.wills.put('dev/3', will('w/3'));
  await third!.wills.dropOwn();
  assert.equal(await third!.wills.get('dev/3'), null);
  assert.equal((await claimed(third!.wills)).length, 2, 'the wills of dead instances stay to be published');
});
