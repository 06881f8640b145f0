import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisSessionRegistry } from '../../../../src/mqtt/redis/session-registry.js';
import { ANONYMOUS_OWNER, ownerOf } from '../../../../src/mqtt/session-registry.js';
import { uniqueName, waitFor } from '../../../helpers/amqp.js';
import { connectRedis, deleteKeys, keysUnder, redisPersistence } from '../../../helpers/redis.js';

const connections: Redis[] = [];
const prefixes: string[] = [];

after(async () => {
  for (const redis of connections) redis.disconnect();
  for (const prefix of prefixes) await deleteKeys(prefix);
});

const alice = ownerOf('alice');
const bob = ownerOf('bob');

/** Registries of several instances on one fresh key prefix, sharing a clock. */
async function fleet(count: number, clock: { now: number } = { now: 1_000 }) {
  const settings = redisPersistence(`${uniqueName('unit-registry')}:`);
  prefixes.push(settings.keyPrefix);
  const redis: Redis[] = [];
  const registries: RedisSessionRegistry[] = [];
  for (let i = 0; i < count; i++) {
    redis.push(await connectRedis(settings));
    registries.push(new RedisSessionRegistry(redis[i]!, { instanceId: `instance-${i}`, keyPrefix: settings.keyPrefix, now: () => clock.now }));
    await registries[i]!.heartbeat(true);
  }
  connections.push(...redis);
  return { registries, clock, settings, redis };
}

const claim = (registry: RedisSessionRegistry, clientId: string, owner: string, persistent = true, maxPersistentSessions = 100) =>
  registry.claim({ clientId, owner, persistent, maxPersistentSessions });

test('redis session registry - a client id belongs to the identity that claimed it, on every instance, connected or offline', async () => {
  const { registries: [a, b] } = await fleet(2);
  const first = await claim(a!, 'bob-dev', bob);
  assert.ok(first.ok);
  assert.deepEqual(await claim(b!, 'bob-dev', alice), { ok: false, reason: 'owned_by_another' }, 'while connected to another instance');
  a!.release('bob-dev', first.claim);
  await a!.settled();
  assert.deepEqual(await claim(b!, 'bob-dev', alice), { ok: false, reason: 'owned_by_another' }, 'while offline');
  assert.deepEqual(await claim(b!, 'bob-dev', alice, false), { ok: false, reason: 'owned_by_another' }, 'a clean session of another identity wipes nothing either');
  assert.deepEqual(await claim(b!, 'bob-dev', ANONYMOUS_OWNER), { ok: false, reason: 'owned_by_another' });
  assert.ok((await claim(b!, 'bob-dev', bob)).ok, 'the owner comes back, on another instance');
});

test('redis session registry - a clean session ends with its connection; a persistent one goes offline until one sweep, of several, forgets it', async () => {
  const { registries: [a, b, c], clock } = await fleet(3);
  const clean = await claim(a!, 'c1', alice, false);
  const persistent = await claim(a!, 'p1', alice, true);
  assert.ok(clean.ok && persistent.ok);
  assert.deepEqual(a!.counts(), { connected: 2, offline: 0 });
  clock.now = 50_000;
  a!.release('c1', clean.claim);
  a!.release('p1', persistent.claim);
  await a!.settled();
  assert.deepEqual(a!.counts(), { connected: 0, offline: 1 });
  assert.ok((await claim(b!, 'c1', bob)).ok, 'nobody holds a clean session that ended');
  assert.deepEqual(await b!.offlineSince(49_999), []);
  assert.deepEqual(await b!.offlineSince(50_000), ['p1']);
  const sweeps = await Promise.all([a!, b!, c!, a!, b!, c!].map((registry) => registry.forget('p1')));
  assert.equal(sweeps.filter(Boolean).length, 1, 'forgotten once, however many instances sweep');
  assert.ok((await claim(c!, 'p1', bob)).ok, "an expired session is nobody's");
});

test('redis session registry - a takeover on another instance: the old connection closing later releases nothing, and a connected session is not forgotten', async () => {
  const { registries: [a, b] } = await fleet(2);
  const old = await claim(a!, 'd', alice);
  const taken = await claim(b!, 'd', alice);
  assert.ok(old.ok && taken.ok);
  a!.release('d', old.claim);
  await a!.settled();
  assert.deepEqual((await b!.holders(['d'])).get('d'), { owner: alice, connected: true }, 'the newer connection still holds it');
  assert.equal(await a!.forget('d'), false);
  b!.release('d', taken.claim);
  await b!.settled();
  assert.deepEqual((await a!.holders(['d', 'nobody'])).get('d'), { owner: alice, connected: false });
  assert.equal((await a!.holders(['nobody'])).size, 0);
});

test('redis session registry - an identity holds at most maxPersistentSessions persistent sessions over the fleet; claims at once on several instances cannot pass it', async () => {
  const { registries } = await fleet(3);
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => claim(registries[i % 3]!, `cap-${i}`, alice, true, 4)));
  assert.equal(answers.filter((answer) => answer.ok).length, 4);
  assert.ok(answers.some((answer) => !answer.ok && answer.reason === 'sessions_per_user'));
  const [a] = registries;
  assert.ok((await claim(a!, 'cap-clean', alice, false, 4)).ok, 'a clean session is not counted');
  assert.ok((await claim(a!, 'cap-bob', bob, true, 4)).ok, 'the cap is per identity');
  const mine = answers.findIndex((answer) => answer.ok);
  assert.ok((await claim(a!, `cap-${mine}`, alice, true, 4)).ok, 'resuming its own is no new one');
  assert.ok((await claim(a!, `cap-${mine}`, alice, false, 4)).ok, 'a clean CONNECT on its own persistent id ends that session');
  assert.ok((await claim(a!, 'cap-new', alice, true, 4)).ok, 'which frees a place');
});

test('redis session registry - an instance silent too long (SIGKILL) is condemned: another puts its sessions offline as of its last heartbeat, and it must start over', async () => {
  const clock = { now: 10_000 };
  const { registries: [dead, alive] } = await fleet(2, clock);
  for (const clientId of ['k1', 'k2', 'k3']) assert.ok((await claim(dead!, clientId, alice)).ok);
  assert.ok((await claim(dead!, 'k-clean', alice, false)).ok);
  clock.now = 20_000;
  await alive!.heartbeat();
  assert.equal(await alive!.reapSilent(clock.now - 30_000), 0, 'silent for 10 s only');
  clock.now = 60_000;
  await alive!.heartbeat();
  assert.equal(await alive!.reapSilent(30_000), 4, 'its four sessions');
  assert.deepEqual((await alive!.offlineSince(10_000)).sort(), ['k1', 'k2', 'k3'], 'offline since its last heartbeat; its clean session ended');
  assert.equal((await alive!.holders(['k-clean'])).size, 0);
  assert.equal(await dead!.heartbeat(), false, 'the condemned instance learns it on its next heartbeat');
  dead!.forgetConnections();
  assert.equal(await dead!.heartbeat(true), true, 'and joins again');
  assert.equal(await alive!.reapSilent(30_000), 0, 'nothing more to take over');
});

test('redis session registry - a release Redis could not record is tried again; a graceful leave puts what the instance held offline', async () => {
  const clock = { now: 5_000 };
  const { registries: [a, b], settings, redis: [redis] } = await fleet(2, clock);
  const held = await claim(a!, 'r1', alice);
  const other = await claim(a!, 'r2', alice);
  assert.ok(held.ok && other.ok);
  const failures: string[] = [];
  redis!.disconnect();
  const broken = new RedisSessionRegistry(redis!, { instanceId: 'instance-0', keyPrefix: settings.keyPrefix, now: () => clock.now, onReleaseFailed: (clientId) => failures.push(clientId) });
  await assert.rejects(broken.claim({ clientId: 'r3', owner: alice, persistent: true, maxPersistentSessions: 10 }));
  a!.release('r1', held.claim);
  await a!.settled();
  assert.deepEqual((await b!.holders(['r1'])).get('r1'), { owner: alice, connected: true }, 'not recorded while Redis was away');
  await waitFor(() => redis!.status === 'end', 'the connection closed');
  await redis!.connect();
  a!.retryReleases();
  await a!.settled();
  assert.deepEqual((await b!.holders(['r1'])).get('r1'), { owner: alice, connected: false });
  await a!.leave();
  assert.deepEqual((await b!.holders(['r2'])).get('r2'), { owner: alice, connected: false }, 'a graceful stop puts its sessions offline');
  assert.deepEqual(await keysUnder(`${settings.keyPrefix}instance-sessions:instance-0`), []);
});
