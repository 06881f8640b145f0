import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryRetainedLedger, retainedBytes, type RetainedLimits, type RetainedOwner, type RetainedReservation } from '../../../src/mqtt/retained-ledger.js';

const alice: RetainedOwner = { username: 'alice' };
const bob: RetainedOwner = { username: 'bob' };
const anonymous: RetainedOwner = { username: null };

const LIMITS: RetainedLimits = { maxRetainedMessages: 100, maxRetainedBytes: 10_000, maxRetainedMessagesPerUser: 10, maxRetainedBytesPerUser: 1_000 };

function ledger(limits: Partial<RetainedLimits> = {}) {
  return new MemoryRetainedLedger({ ...LIMITS, ...limits });
}

/** Reserves and stores at once, as a publish that goes through does; returns the refusal, if any. */
async function publish(on: MemoryRetainedLedger, topic: string, owner: RetainedOwner, payloadBytes: number): Promise<string | null> {
  const admission = on.reserve({ topic, owner, payloadBytes });
  if (!admission.ok) return admission.limit;
  await on.stored({ topic, owner, payloadBytes }, admission.reservation);
  return null;
}

function reserve(on: MemoryRetainedLedger, topic: string, owner: RetainedOwner, payloadBytes: number): RetainedReservation {
  const admission = on.reserve({ topic, owner, payloadBytes });
  assert.ok(admission.ok, `a reservation on ${topic}`);
  return admission.reservation;
}

test('retained ledger - a message counts its topic and payload bytes, in total and for its user', async () => {
  const retained = ledger();
  assert.equal(retainedBytes({ topic: 'a/é', owner: null, payloadBytes: 10 }), 4 + 10);
  assert.equal(await publish(retained, 'a/1', alice, 97), null);
  assert.equal(await publish(retained, 'b/1', bob, 47), null);
  assert.deepEqual(retained.usage(), { messages: 2, bytes: 100 + 50 });
  assert.deepEqual(retained.usageOf('alice'), { messages: 1, bytes: 100 });
  assert.deepEqual(retained.usageOf('bob'), { messages: 1, bytes: 50 });
  assert.deepEqual(retained.ownerOf('a/1'), alice);
  assert.equal(retained.ownerOf('nothing'), undefined);
  assert.deepEqual(retained.reserved(), { messages: 0, bytes: 0 }, 'nothing stays reserved once stored');
});

test('retained ledger - each limit refuses with its own name, and refuses nothing else', async () => {
  const perUserMessages = ledger({ maxRetainedMessagesPerUser: 2 });
  assert.equal(await publish(perUserMessages, 't/1', alice, 1), null);
  assert.equal(await publish(perUserMessages, 't/2', alice, 1), null);
  assert.equal(await publish(perUserMessages, 't/3', alice, 1), 'retained_messages_per_user');
  assert.equal(await publish(perUserMessages, 't/3', bob, 1), null, 'another user still has room');

  const perUserBytes = ledger({ maxRetainedBytesPerUser: 100 });
  assert.equal(await publish(perUserBytes, 't/1', alice, 97), null); // 3 + 97 = 100: exactly the limit
  assert.equal(await publish(perUserBytes, 't/2', alice, 1), 'retained_bytes_per_user');

  const totalMessages = ledger({ maxRetainedMessages: 2 });
  assert.equal(await publish(totalMessages, 't/1', alice, 1), null);
  assert.equal(await publish(totalMessages, 't/2', bob, 1), null);
  assert.equal(await publish(totalMessages, 't/3', { username: 'carol' }, 1), 'retained_messages');

  const totalBytes = ledger({ maxRetainedBytes: 200 });
  assert.equal(await publish(totalBytes, 't/1', alice, 147), null);
  assert.equal(await publish(totalBytes, 't/2', bob, 48), 'retained_bytes');
  assert.equal(await publish(totalBytes, 't/2', bob, 47), null);
  assert.deepEqual(totalBytes.usage(), { messages: 2, bytes: 200 });
});

test('retained ledger - clearing a message gives back its room; a refused publish changes nothing', async () => {
  const retained = ledger({ maxRetainedMessagesPerUser: 1 });
  assert.equal(await publish(retained, 't/1', alice, 10), null);
  assert.equal(await publish(retained, 't/2', alice, 10), 'retained_messages_per_user');
  assert.deepEqual(retained.usage(), { messages: 1, bytes: 13 });
  await retained.stored({ topic: 't/1', owner: alice, payloadBytes: 0 }); // an empty retained payload
  assert.deepEqual(retained.usage(), { messages: 0, bytes: 0 });
  assert.deepEqual(retained.usageOf('alice'), { messages: 0, bytes: 0 });
  assert.equal(retained.ownerOf('t/1'), undefined);
  assert.equal(await publish(retained, 't/2', alice, 10), null);
});

test('retained ledger - replacing a message counts the difference; a smaller one always fits', async () => {
  const retained = ledger({ maxRetainedBytesPerUser: 103, maxRetainedMessagesPerUser: 1 });
  assert.equal(await publish(retained, 't/1', alice, 100), null);
  assert.equal(await publish(retained, 't/1', alice, 100), null, 'same size: nothing more');
  assert.equal(await publish(retained, 't/1', alice, 50), null, 'smaller');
  assert.equal(await publish(retained, 't/1', alice, 100), null, 'back to 100: 50 more, within 103');
  assert.equal(await publish(retained, 't/1', alice, 101), 'retained_bytes_per_user');
  assert.deepEqual(retained.usageOf('alice'), { messages: 1, bytes: 103 });
  assert.deepEqual(retained.usage(), { messages: 1, bytes: 103 });
});

test("retained ledger - replacing another user's message counts it whole for the new user and frees the old one's room", async () => {
  const retained = ledger({ maxRetainedMessagesPerUser: 1 });
  assert.equal(await publish(retained, 'shared', alice, 10), null);
  assert.equal(await publish(retained, 'other', bob, 10), null);
  assert.equal(await publish(retained, 'shared', bob, 10), 'retained_messages_per_user', 'bob already holds one');
  await retained.stored({ topic: 'other', owner: bob, payloadBytes: 0 });
  assert.equal(await publish(retained, 'shared', bob, 20), null);
  assert.deepEqual(retained.usageOf('alice'), { messages: 0, bytes: 0 });
  assert.deepEqual(retained.usageOf('bob'), { messages: 1, bytes: 26 });
  assert.deepEqual(retained.usage(), { messages: 1, bytes: 26 });
  assert.deepEqual(retained.ownerOf('shared'), bob);
});

test('retained ledger - publishes checked at the same time cannot pass a limit together (room is reserved at the check)', async () => {
  const retained = ledger({ maxRetainedMessagesPerUser: 5, maxRetainedBytes: 1_000_000 });
  const admissions = Array.from({ length: 50 }, (_, i) => retained.reserve({ topic: `t/${i}`, owner: alice, payloadBytes: 10 }));
  const admitted = admissions.filter((admission) => admission.ok);
  assert.equal(admitted.length, 5);
  assert.ok(admissions.slice(5).every((admission) => !admission.ok && admission.limit === 'retained_messages_per_user'));
  assert.deepEqual(retained.reserved('alice'), { messages: 5, bytes: 5 * 13 });
  for (const admission of admitted) if (admission.ok) await retained.stored({ topic: admission.reservation.topic, owner: alice, payloadBytes: 10 }, admission.reservation);
  assert.deepEqual(retained.usageOf('alice'), { messages: 5, bytes: 5 * 13 });
  assert.deepEqual(retained.reserved('alice'), { messages: 0, bytes: 0 });
  assert.equal(retained.reserve({ topic: 't/new', owner: alice, payloadBytes: 10 }).ok, false);
});

test('retained ledger - a released reservation gives its room back once; a store after it still counts what is stored', async () => {
  const retained = ledger({ maxRetainedMessages: 1 });
  const first = reserve(retained, 't/1', alice, 10);
  assert.equal(retained.reserve({ topic: 't/2', owner: bob, payloadBytes: 10 }).ok, false, 'the room is held');
  await retained.release(first);
  await retained.release(first);
  assert.deepEqual(retained.reserved(), { messages: 0, bytes: 0 }, 'released once, not twice');
  // aedes may still store a publish whose connection closed meanwhile: the store is the truth.
  await retained.stored({ topic: 't/1', owner: alice, payloadBytes: 10 }, first);
  assert.deepEqual(retained.usage(), { messages: 1, bytes: 13 });
  assert.deepEqual(retained.reserved(), { messages: 0, bytes: 0 });
});

test('retained ledger - anonymous clients are one user; downlink messages (no owner) count in the totals only', async () => {
  const retained = ledger({ maxRetainedMessagesPerUser: 2, maxRetainedMessages: 4 });
  assert.equal(await publish(retained, 'anon/1', anonymous, 1), null);
  assert.equal(await publish(retained, 'anon/2', { username: null }, 1), null);
  assert.equal(await publish(retained, 'anon/3', anonymous, 1), 'retained_messages_per_user');
  assert.deepEqual(retained.usageOf(null), { messages: 2, bytes: 2 * 7 });
  assert.equal(await publish(retained, 'down/1', null, 1), null);
  assert.equal(await publish(retained, 'down/2', null, 1), null, 'no per-user limit for the downlink');
  assert.equal(await publish(retained, 'down/3', null, 1), 'retained_messages', 'the total still holds');
  assert.equal(retained.ownerOf('down/1'), null);
});

test('retained ledger - a limit of 0 keeps no retained message, but clearing still works', async () => {
  const retained = ledger({ maxRetainedMessages: 0 });
  assert.equal(await publish(retained, 't/1', alice, 1), 'retained_messages');
  await retained.stored({ topic: 't/1', owner: alice, payloadBytes: 0 });
  assert.deepEqual(retained.usage(), { messages: 0, bytes: 0 });
});
