import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryRetainedLedger, type RetainedAdmission, type RetainedEntry } from '../../../src/mqtt/retained-ledger.js';
import { RetainedQuota } from '../../../src/mqtt/retained-quota.js';

const alice = { username: 'alice' };

function quota(limits: Partial<ConstructorParameters<typeof MemoryRetainedLedger>[0]> = {}) {
  const ledger = new MemoryRetainedLedger({ maxRetainedMessages: 100, maxRetainedBytes: 100_000, maxRetainedMessagesPerUser: 2, maxRetainedBytesPerUser: 10_000, ...limits });
  return { ledger, quota: new RetainedQuota(ledger) };
}

/** A retained PUBLISH as aedes hands it to the hooks: its own payload Buffer. */
const retainedPublish = (topic: string, payload = 'on') => ({ topic, payload: Buffer.from(payload), retain: true });

test('retained quota - a publish that is not retained, or clears a topic, passes without reserving anything', () => {
  const { ledger, quota: retained } = quota();
  assert.equal(retained.admit({ topic: 't', payload: Buffer.from('x'), retain: false }, alice, null), null);
  assert.equal(retained.admit({ topic: 't', payload: Buffer.alloc(0), retain: true }, alice, null), null);
  assert.deepEqual(ledger.reserved(), { messages: 0, bytes: 0 });
});

test("retained quota - aedes' store of the admitted publish (its payload Buffer) commits the reservation to the publisher", async () => {
  const { ledger, quota: retained } = quota();
  const publish = retainedPublish('devices/alice/state');
  assert.equal(retained.admit(publish, alice, { closed: false }), null);
  assert.deepEqual(ledger.reserved('alice'), { messages: 1, bytes: 21 });
  // aedes stores a copy of the packet that keeps the payload Buffer.
  await retained.stored({ topic: publish.topic, payload: publish.payload, retain: true });
  assert.deepEqual(ledger.reserved(), { messages: 0, bytes: 0 });
  assert.deepEqual(ledger.usageOf('alice'), { messages: 1, bytes: 21 });
  assert.deepEqual(ledger.ownerOf('devices/alice/state'), alice);
});

test('retained quota - past a limit the publish is refused with the limit, and nothing is held for it', () => {
  const { ledger, quota: retained } = quota({ maxRetainedMessagesPerUser: 1 });
  assert.equal(retained.admit(retainedPublish('a'), alice, null), null);
  assert.equal(retained.admit(retainedPublish('b'), alice, null), 'retained_messages_per_user');
  assert.deepEqual(ledger.reserved('alice'), { messages: 1, bytes: 3 });
});

test('retained quota - a publish abandoned, or one aedes does not store (a resent QoS 2 PUBLISH), gives its room back', () => {
  const { ledger, quota: retained } = quota();
  const failed = retainedPublish('a');
  const resent = retainedPublish('b');
  assert.equal(retained.admit(failed, alice, { closed: false }), null);
  assert.equal(retained.admit(resent, alice, { closed: false }), null);
  retained.abandon(failed);
  retained.notStored(resent);
  retained.notStored({ payload: undefined }); // a PUBREL: nothing to do
  assert.deepEqual(ledger.reserved(), { messages: 0, bytes: 0 });
});

test('retained quota - a connection that closes gives back the room of what it published and aedes has not stored', async () => {
  const { ledger, quota: retained } = quota();
  const connection = { closed: false };
  const stored = retainedPublish('a');
  const lost = retainedPublish('b');
  assert.equal(retained.admit(stored, alice, connection), null);
  assert.equal(retained.admit(lost, alice, connection), null);
  await retained.stored(stored);
  retained.connectionClosed(connection);
  assert.deepEqual(ledger.reserved(), { messages: 0, bytes: 0 });
  assert.deepEqual(ledger.usage(), { messages: 1, bytes: 3 });
  retained.connectionClosed(connection); // again: nothing more
  assert.deepEqual(ledger.reserved(), { messages: 0, bytes: 0 });
});

test('retained quota - a publish admitted on a connection closed meanwhile holds no room, yet a later store still counts it for its publisher', async () => {
  const { ledger, quota: retained } = quota();
  const publish = retainedPublish('a');
  assert.equal(retained.admit(publish, alice, { closed: true }), null);
  assert.deepEqual(ledger.reserved(), { messages: 0, bytes: 0 });
  await retained.stored(publish);
  assert.deepEqual(ledger.usageOf('alice'), { messages: 1, bytes: 3 });
});

test('retained quota - a message restored from a session file counts against the owner it was saved with; one with no reservation against nobody', async () => {
  const { ledger, quota: retained } = quota();
  await retained.stored(retainedPublish('restored'), alice);
  await retained.stored(retainedPublish('unknown'));
  assert.deepEqual(ledger.usageOf('alice'), { messages: 1, bytes: 10 });
  assert.equal(ledger.ownerOf('unknown'), null);
  assert.deepEqual(retained.usage(), { messages: 2, bytes: 10 + 9 });
});

test('retained quota - with a ledger that answers later (a shared store), admission answers later too', async () => {
  const memory = new MemoryRetainedLedger({ maxRetainedMessages: 1, maxRetainedBytes: 100, maxRetainedMessagesPerUser: 1, maxRetainedBytesPerUser: 100 });
  const later = Object.assign(Object.create(memory) as MemoryRetainedLedger, {
    reserve: (entry: RetainedEntry): Promise<RetainedAdmission> => Promise.resolve(memory.reserve(entry)),
  });
  const retained = new RetainedQuota(later);
  const first = retained.admit(retainedPublish('a'), alice, { closed: false });
  assert.ok(first instanceof Promise);
  assert.equal(await first, null);
  assert.equal(await retained.admit(retainedPublish('b'), alice, null), 'retained_messages_per_user');
});

test('retained quota - a ledger whose release rejects never makes an unhandled rejection (it would end the process)', async () => {
  const memory = new MemoryRetainedLedger({ maxRetainedMessages: 10, maxRetainedBytes: 100, maxRetainedMessagesPerUser: 10, maxRetainedBytesPerUser: 100 });
  let released = 0;
  const failing = Object.assign(Object.create(memory) as MemoryRetainedLedger, {
    release: async () => {
      released++;
      throw new Error('Redis is away');
    },
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const retained = new RetainedQuota(failing);
    const connection = { closed: false };
    const [a, b, c] = [retainedPublish('a'), retainedPublish('b'), retainedPublish('c')];
    assert.equal(retained.admit(a, alice, connection), null);
    assert.equal(retained.admit(b, alice, connection), null);
    assert.equal(retained.admit(c, alice, { closed: true }), null); // closed meanwhile: released at once
    retained.abandon(a);
    retained.connectionClosed(connection);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(released, 3);
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('retained quota - storeBeforeAck stores a publish once: aedes\' own store of it afterwards does nothing', async () => {
  const { ledger } = quota();
  const retained = new RetainedQuota(ledger, { storeBeforeAck: true });
  const publish = retainedPublish('early', 'v');
  assert.equal(retained.admit(publish, alice, { closed: false }), null);
  await retained.storeBeforeAck(publish);
  assert.deepEqual(ledger.usageOf('alice'), { messages: 1, bytes: 6 });
  await retained.stored({ ...publish });
  assert.deepEqual(ledger.usageOf('alice'), { messages: 1, bytes: 6 });
  await retained.stored({ ...publish });
  assert.deepEqual(ledger.usage(), { messages: 1, bytes: 6 }, 'a later store of the same Buffer (a resend aedes stores again) counts as a replacement');
});
