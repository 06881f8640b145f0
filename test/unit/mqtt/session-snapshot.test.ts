import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadSessions, saveSessions } from '../../../src/mqtt/session-snapshot.js';
import { MemorySessionRegistry, ownerOf } from '../../../src/mqtt/session-registry.js';
import { createSessionStore } from '../../../src/mqtt/session-store.js';

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
