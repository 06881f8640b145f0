import assert from 'node:assert/strict';
import { test } from 'node:test';
import Packet from 'aedes-packet';
import { SessionExpiry, sweepIntervalMs } from '../../../src/mqtt/session-expiry.js';
import { MemorySessionRegistry, ownerOf } from '../../../src/mqtt/session-registry.js';
import { createSessionStore } from '../../../src/mqtt/session-store.js';

test('session expiry - a session offline longer than the expiry loses its subscriptions, queue and registry entry; a younger or connected one keeps them', async () => {
  let now = 0;
  const store = createSessionStore({ maxOfflineMessages: 10, onDropped: () => {} }, new MemorySessionRegistry(() => now));
  const expired: string[] = [];
  const expiry = new SessionExpiry({ store, expiryMs: 1_000, onExpired: (clientId) => expired.push(clientId), onError: assert.fail, now: () => now });
  for (const clientId of ['old', 'young', 'online']) {
    const claimed = await store.registry.claim({ clientId, owner: ownerOf('alice'), persistent: true, maxPersistentSessions: 10 });
    assert.ok(claimed.ok);
    await store.persistence.addSubscriptions({ id: clientId }, [{ topic: `t/${clientId}`, qos: 1 }]);
    store.queues.enqueue(clientId, new Packet({ cmd: 'publish', topic: `t/${clientId}`, payload: Buffer.from('x'), qos: 1, brokerId: 'b', brokerCounter: 1 }));
    if (clientId === 'old') store.registry.release(clientId, claimed.claim);
    if (clientId === 'young') {
      now = 600;
      store.registry.release(clientId, claimed.claim);
    }
  }
  now = 1_000;
  assert.equal(await expiry.sweep(), 1);
  assert.deepEqual(expired, ['old']);
  assert.deepEqual(await store.persistence.subscriptionsByClient({ id: 'old' }), []);
  assert.deepEqual(store.queues.snapshot('old'), []);
  assert.equal((await store.persistence.subscriptionsByClient({ id: 'young' })).length, 1);
  assert.equal(store.queues.snapshot('young').length, 1);
  now = 1_600;
  assert.equal(await expiry.sweep(), 1);
  assert.deepEqual(expired, ['old', 'young']);
  assert.equal((await store.persistence.subscriptionsByClient({ id: 'online' })).length, 1, 'a connected session never expires');
  assert.deepEqual(store.registry.counts(), { connected: 1, offline: 0 });
});

test('session expiry - sweeps a tenth of the expiry apart, within 1 s and 1 min', () => {
  assert.equal(sweepIntervalMs(86_400_000), 60_000);
  assert.equal(sweepIntervalMs(100_000), 10_000);
  assert.equal(sweepIntervalMs(1_000), 1_000);
});
