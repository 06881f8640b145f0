import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ANONYMOUS_OWNER, MemorySessionRegistry, ownerOf, usernameOfOwner } from '../../../src/mqtt/session-registry.js';

const alice = ownerOf('alice');
const bob = ownerOf('bob');
const claim = (registry: MemorySessionRegistry, clientId: string, owner: string, persistent = true, maxPersistentSessions = 100) =>
  registry.claim({ clientId, owner, persistent, maxPersistentSessions });

test('session registry - a client id belongs to the identity that claimed it, connected or offline; another identity is refused', async () => {
  let now = 1_000;
  const registry = new MemorySessionRegistry(() => now);
  const first = await claim(registry, 'bob-dev', bob);
  assert.ok(first.ok);
  assert.deepEqual(await claim(registry, 'bob-dev', alice), { ok: false, reason: 'owned_by_another' }, 'while connected');
  registry.release('bob-dev', first.claim);
  now = 2_000;
  assert.deepEqual(await claim(registry, 'bob-dev', alice), { ok: false, reason: 'owned_by_another' }, 'while offline');
  assert.deepEqual(await claim(registry, 'bob-dev', alice, false), { ok: false, reason: 'owned_by_another' }, 'a clean session of another identity wipes nothing either');
  assert.deepEqual(await claim(registry, 'bob-dev', ANONYMOUS_OWNER), { ok: false, reason: 'owned_by_another' }, 'anonymous never resumes a named session');
  assert.ok((await claim(registry, 'bob-dev', bob)).ok, 'the owner comes back');
});

test('session registry - a clean session ends with its connection; a persistent one goes offline until it is forgotten', async () => {
  let now = 0;
  const registry = new MemorySessionRegistry(() => now);
  const clean = await claim(registry, 'c1', alice, false);
  const persistent = await claim(registry, 'p1', alice, true);
  assert.ok(clean.ok && persistent.ok);
  assert.deepEqual(registry.counts(), { connected: 2, offline: 0 });
  now = 50;
  registry.release('c1', clean.claim);
  registry.release('p1', persistent.claim);
  assert.deepEqual(registry.counts(), { connected: 0, offline: 1 });
  assert.ok((await claim(registry, 'c1', bob)).ok, 'nobody holds a clean session that ended');
  assert.deepEqual(await registry.offlineSince(49), []);
  assert.deepEqual(await registry.offlineSince(50), ['p1']);
  assert.equal(await registry.forget('p1'), true);
  assert.ok((await claim(registry, 'p1', bob)).ok, 'an expired session is nobody\'s');
});

test('session registry - a takeover by the same identity: the old connection closing later releases nothing', async () => {
  const registry = new MemorySessionRegistry(() => 0);
  const old = await claim(registry, 'd', alice);
  const taken = await claim(registry, 'd', alice);
  assert.ok(old.ok && taken.ok);
  registry.release('d', old.claim);
  assert.deepEqual(registry.counts(), { connected: 1, offline: 0 });
  assert.equal(await registry.forget('d'), false, 'a connected session is not forgotten');
  registry.release('d', taken.claim);
  assert.deepEqual(registry.counts(), { connected: 0, offline: 1 });
});

test('session registry - an identity holds at most maxPersistentSessions persistent sessions; resuming one of its own is no new one', async () => {
  const registry = new MemorySessionRegistry(() => 0);
  const one = await claim(registry, 'a1', alice, true, 2);
  const two = await claim(registry, 'a2', alice, true, 2);
  assert.ok(one.ok && two.ok);
  assert.deepEqual(await claim(registry, 'a3', alice, true, 2), { ok: false, reason: 'sessions_per_user' });
  assert.ok((await claim(registry, 'a3', alice, false, 2)).ok, 'a clean session is not counted');
  assert.ok((await claim(registry, 'a4', bob, true, 2)).ok, 'the cap is per identity');
  registry.release('a1', one.claim);
  assert.ok((await claim(registry, 'a1', alice, true, 2)).ok, 'resuming its own offline session');
  const cleaned = await claim(registry, 'a2', alice, false, 2);
  assert.ok(cleaned.ok, 'a clean CONNECT on its own persistent id ends that session');
  assert.ok((await claim(registry, 'a5', alice, true, 2)).ok, 'which frees a place');
});

test('session registry - sessions restored without an owner go to the first identity that connects; with one, they keep it', async () => {
  const registry = new MemorySessionRegistry(() => 500);
  registry.restore([
    { clientId: 'old', owner: null, offlineSince: 100 },
    { clientId: 'owned', owner: bob, offlineSince: 200 },
  ]);
  assert.deepEqual(registry.counts(), { connected: 0, offline: 2 });
  assert.deepEqual(await registry.offlineSince(1_000), ['old', 'owned'], 'oldest first');
  assert.deepEqual(await claim(registry, 'owned', alice), { ok: false, reason: 'owned_by_another' });
  const taken = await claim(registry, 'old', alice);
  assert.ok(taken.ok);
  registry.release('old', taken.claim);
  assert.deepEqual(await claim(registry, 'old', bob), { ok: false, reason: 'owned_by_another' });
  assert.deepEqual(
    registry.persistentSessions().sort((a, b) => a.clientId.localeCompare(b.clientId)),
    [
      { clientId: 'old', owner: alice, offlineSince: 500 },
      { clientId: 'owned', owner: bob, offlineSince: 200 },
    ],
  );
});

test('session registry - holder tells who holds a client id and whether it is connected; the owner gives back its username', async () => {
  const registry = new MemorySessionRegistry();
  const connection = await claim(registry, 'alice-dev', alice);
  assert.ok(connection.ok);
  assert.deepEqual(registry.holder('alice-dev'), { owner: alice, connected: true });
  registry.release('alice-dev', connection.claim);
  assert.deepEqual(registry.holder('alice-dev'), { owner: alice, connected: false });
  registry.restore([{ clientId: 'old', owner: null, offlineSince: 0 }]);
  assert.deepEqual(registry.holder('old'), { owner: null, connected: false });
  assert.equal(registry.holder('nobody'), undefined);
  assert.equal(usernameOfOwner(alice), 'alice');
  assert.equal(usernameOfOwner(ownerOf('user:x')), 'user:x', 'a username that looks like an owner');
  assert.equal(usernameOfOwner(ANONYMOUS_OWNER), undefined);
});
