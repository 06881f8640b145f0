import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemoryRetainedLedger } from '../../../src/mqtt/retained-ledger.js';
import { RetainedQuota } from '../../../src/mqtt/retained-quota.js';
import { loadSessions, saveSessions, SNAPSHOT_VERSION } from '../../../src/mqtt/session-snapshot.js';
import { MemorySessionRegistry, ownerOf } from '../../../src/mqtt/session-registry.js';
import { createSessionStore } from '../../../src/mqtt/session-store.js';

const directory = mkdtempSync(join(tmpdir(), 'bridge-snapshot-'));

function store() {
  const ledger = new MemoryRetainedLedger({ maxRetainedMessages: 100, maxRetainedBytes: 100_000, maxRetainedMessagesPerUser: 2, maxRetainedBytesPerUser: 10_000 });
  const quota = new RetainedQuota(ledger);
  return { ledger, quota, sessions: createSessionStore({ maxOfflineMessages: 10, onDropped: () => {}, retained: quota, retainedOwnerOf: (topic) => ledger.ownerOf(topic) }) };
}

/** Publishes a retained message as aedes does after admission: checked, then stored. */
async function publishRetained(target: ReturnType<typeof store>, topic: string, owner: { username: string | null } | null, payload: string) {
  const packet = { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: true, brokerId: 'b', brokerCounter: 1 };
  assert.equal(target.quota.admit(packet, owner, null), null);
  await target.sessions.persistence.storeRetained(packet as never);
}

test('session snapshot - retained messages keep their owners across a save and a load, so the per-user limits still hold', async () => {
  const file = join(directory, 'owners.json');
  const before = store();
  await publishRetained(before, 'devices/alice/a', { username: 'alice' }, 'x');
  await publishRetained(before, 'devices/alice/b', { username: 'alice' }, 'y');
  await publishRetained(before, 'anon/state', { username: null }, 'z');
  await publishRetained(before, 'commands/d1', null, 'w');
  assert.deepEqual(await saveSessions(before.sessions, file), { sessions: 0, queued: 0, retained: 4 });
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { version: number; retained: Array<{ topic: string; owner: unknown }> };
  assert.equal(saved.version, SNAPSHOT_VERSION);
  assert.deepEqual(Object.fromEntries(saved.retained.map((entry) => [entry.topic, entry.owner])), {
    'devices/alice/a': { username: 'alice' },
    'devices/alice/b': { username: 'alice' },
    'anon/state': { username: null },
    'commands/d1': null,
  });

  const after = store();
  assert.deepEqual(await loadSessions(after.sessions, file), { sessions: 0, queued: 0, retained: 4 });
  assert.deepEqual(after.ledger.usage(), before.ledger.usage());
  assert.deepEqual(after.ledger.usageOf('alice'), { messages: 2, bytes: 2 * 16 });
  assert.deepEqual(after.ledger.usageOf(null), { messages: 1, bytes: 11 });
  assert.equal(after.quota.admit({ topic: 'devices/alice/c', payload: Buffer.from('v'), retain: true }, { username: 'alice' }, null), 'retained_messages_per_user');
});

test('session snapshot - a version 1 file (no owners) is still read; its retained messages count in the totals only', async () => {
  const file = join(directory, 'v1.json');
  const payload = Buffer.from('online').toString('base64');
  writeFileSync(
    file,
    JSON.stringify({
      version: 1,
      savedAt: '2024-01-01T00:00:00.000Z',
      sessions: [{ clientId: 'dev-1', subscriptions: [{ topic: 'cmd/#', qos: 1 }], queue: [] }],
      retained: [{ topic: 'state/dev-1', payload, qos: 1, retain: true, brokerId: 'b', brokerCounter: 3 }],
    }),
  );
  const restored = store();
  assert.deepEqual(await loadSessions(restored.sessions, file), { sessions: 1, queued: 0, retained: 1 });
  assert.deepEqual(restored.ledger.usage(), { messages: 1, bytes: 11 + 6 });
  assert.equal(restored.ledger.ownerOf('state/dev-1'), null);
  const subscriptions = await restored.sessions.persistence.subscriptionsByClient({ id: 'dev-1' });
  assert.deepEqual(subscriptions.map(({ topic, qos }) => ({ topic, qos })), [{ topic: 'cmd/#', qos: 1 }]);
});

test('session snapshot - a file of an unknown version is refused, naming the versions this bridge reads', async () => {
  const file = join(directory, 'v9.json');
  writeFileSync(file, JSON.stringify({ version: 9, savedAt: '', sessions: [], retained: [] }));
  await assert.rejects(loadSessions(store().sessions, file), { code: 'BRIDGE_ERR_SESSION_FILE', message: /has version 9; this bridge reads versions 1 and 2/ });
});

const storeAt = (now: () => number) => createSessionStore({ maxOfflineMessages: 10, onDropped: () => {} }, new MemorySessionRegistry(now));

test('session snapshot - who owns each persistent session, and since when it is offline, survive a restart', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-snapshot-')), 'sessions.json');
  const before = storeAt(() => 1_000);
  const claimed = await before.registry.claim({ clientId: 'bob-dev', owner: ownerOf('bob'), persistent: true, maxPersistentSessions: 10 });
  assert.ok(claimed.ok);
  await before.persistence.addSubscriptions({ id: 'bob-dev' }, [{ topic: 'devices/bob/commands/#', qos: 1 }]);
  before.registry.release('bob-dev', claimed.claim);
  assert.deepEqual(await saveSessions(before, file), { sessions: 1, queued: 0, retained: 0 });

  const after = storeAt(() => 5_000);
  assert.deepEqual(await loadSessions(after, file), { sessions: 1, queued: 0, retained: 0 });
  assert.deepEqual(after.registry.persistentSessions(), [{ clientId: 'bob-dev', owner: ownerOf('bob'), offlineSince: 1_000 }]);
  assert.deepEqual(await after.registry.claim({ clientId: 'bob-dev', owner: ownerOf('alice'), persistent: true, maxPersistentSessions: 10 }), { ok: false, reason: 'owned_by_another' });
  assert.equal(existsSync(file), false, 'a snapshot is read once');
});

test('session snapshot - a version 1 file (no owners) is read: its sessions went offline when it was saved, and belong to the first identity that connects', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-snapshot-')), 'sessions.json');
  writeFileSync(file, JSON.stringify({ version: 1, savedAt: '2026-11-30T12:00:00.000Z', sessions: [{ clientId: 'old', subscriptions: [{ topic: 'a/#', qos: 1 }], queue: [] }], retained: [] }));
  const store = storeAt(() => Date.parse('2026-12-01T00:00:00.000Z'));
  assert.deepEqual(await loadSessions(store, file), { sessions: 1, queued: 0, retained: 0 });
  assert.deepEqual(store.registry.persistentSessions(), [{ clientId: 'old', owner: null, offlineSince: Date.parse('2026-11-30T12:00:00.000Z') }]);
  assert.ok((await store.registry.claim({ clientId: 'old', owner: ownerOf('alice'), persistent: true, maxPersistentSessions: 10 })).ok);
});
