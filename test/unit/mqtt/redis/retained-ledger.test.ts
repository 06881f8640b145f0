import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisRetainedLedger, RETAINED_RESERVATION_LEASE_MS } from '../../../../src/mqtt/redis/retained-ledger.js';
import { RetainedQuota } from '../../../../src/mqtt/retained-quota.js';
import type { RetainedLimits, RetainedOwner } from '../../../../src/mqtt/retained-ledger.js';
import { uniqueName } from '../../../helpers/amqp.js';
import { connectRedis, deleteKeys, redisPersistence } from '../../../helpers/redis.js';

const connections: Redis[] = [];
const prefixes: string[] = [];

after(async () => {
  for (const redis of connections) redis.disconnect();
  for (const prefix of prefixes) await deleteKeys(prefix);
});

const LIMITS: RetainedLimits = { maxRetainedMessages: 5, maxRetainedBytes: 10_000, maxRetainedMessagesPerUser: 3, maxRetainedBytesPerUser: 1_000 };

/** Ledgers on one fresh key prefix, each on a connection of its own (as on several instances); `redis[i]` is ledger i's. */
async function ledgers(count: number, limits = LIMITS, now: () => number = Date.now): Promise<RedisRetainedLedger[] & { redis: Redis[] }> {
  const settings = redisPersistence(`${uniqueName('unit-ledger')}:`);
  prefixes.push(settings.keyPrefix);
  const redis: Redis[] = [];
  const made: RedisRetainedLedger[] = [];
  for (let i = 0; i < count; i++) {
    redis.push(await connectRedis(settings));
    made.push(new RedisRetainedLedger(redis[i]!, limits, now));
  }
  connections.push(...redis);
  return Object.assign(made, { redis });
}

const alice: RetainedOwner = { username: 'alice' };
const anonymous: RetainedOwner = { username: null };
const entry = (topic: string, owner: RetainedOwner, payload: string) => ({ topic, owner, payloadBytes: Buffer.byteLength(payload), message: { topic, payload: Buffer.from(payload), qos: 1 } });

async function store(ledger: RedisRetainedLedger, topic: string, owner: RetainedOwner, payload: string): Promise<string | null> {
  const admission = await ledger.reserve(entry(topic, owner, payload));
  if (!admission.ok) return admission.limit;
  await ledger.stored(entry(topic, owner, payload), admission.reservation);
  return null;
}

async function retained(ledger: RedisRetainedLedger, filters: string[]): Promise<string[]> {
  const found: string[] = [];
  for await (const packet of ledger.match(filters)) found.push(`${packet.topic}=${packet.payload!.toString()}`);
  return found.sort();
}

test('redis retained ledger - the limits per user and in total, as the memory ledger keeps them; replacing counts the difference; clearing gives back', async () => {
  const [ledger] = await ledgers(1);
  for (const topic of ['a/1', 'a/2', 'a/3']) assert.equal(await store(ledger!, topic, alice, 'x'), null);
  assert.equal(await store(ledger!, 'a/4', alice, 'x'), 'retained_messages_per_user');
  assert.equal(await store(ledger!, 'a/1', alice, 'replaced'), null, 'replacing one of its own is no new message');
  assert.equal(await store(ledger!, 'n/1', anonymous, 'x'), null);
  assert.equal(await store(ledger!, 'n/2', anonymous, 'x'), null);
  assert.equal(await store(ledger!, 'd/1', null, 'downlink'), 'retained_messages', 'the sixth message passes the total');
  assert.deepEqual(await ledger!.usageOf('alice'), { messages: 3, bytes: 3 + 8 + 3 + 1 + 3 + 1 });
  assert.deepEqual(await ledger!.usageOf(null), { messages: 2, bytes: 2 * (3 + 1) });
  await ledger!.stored({ topic: 'a/2', owner: alice, payloadBytes: 0 });
  assert.deepEqual(await ledger!.usageOf('alice'), { messages: 2, bytes: 3 + 8 + 3 + 1 });
  assert.deepEqual(await ledger!.refresh(), { messages: 4, bytes: 11 + 4 + 8 });
  assert.deepEqual(ledger!.usage(), { messages: 4, bytes: 23 });
  assert.equal(await store(ledger!, 'a/big', alice, 'x'.repeat(990)), 'retained_bytes_per_user');
  assert.deepEqual(await retained(ledger!, ['a/#', 'n/1']), ['a/1=replaced', 'a/3=x', 'n/1=x']);
  assert.deepEqual(await ledger!.reserved(), { messages: 0, bytes: 0 }, 'nothing stays reserved');
});

test('redis retained ledger - reservations on several instances at once cannot together pass a limit, and are shared by them', async () => {
  const instances = await ledgers(3, { ...LIMITS, maxRetainedMessagesPerUser: 100, maxRetainedMessages: 10 });
  const admissions = await Promise.all(Array.from({ length: 30 }, (_, i) => instances[i % 3]!.reserve(entry(`race/${i}`, alice, 'x'))));
  assert.equal(admissions.filter((admission) => admission.ok).length, 10);
  const reservedBytes = admissions.reduce((sum, admission, i) => sum + (admission.ok ? Buffer.byteLength(`race/${i}`) + 1 : 0), 0);
  assert.deepEqual(await instances[0]!.reserved('alice'), { messages: 10, bytes: reservedBytes }, 'every instance sees what the others reserved');
  // Releasing, twice, and with Redis away, never fails.
  for (const admission of admissions) if (admission.ok) await instances[1]!.release(admission.reservation);
  for (const admission of admissions) if (admission.ok) await instances[2]!.release(admission.reservation);
  assert.deepEqual(await instances[0]!.reserved(), { messages: 0, bytes: 0 });
});

test('redis retained ledger - a release with Redis away resolves (the reservation lapses instead); a lapsed reservation gives its room back', async () => {
  let now = 1_000_000;
  const made = await ledgers(2, { ...LIMITS, maxRetainedMessages: 1 }, () => now);
  const [ledger, other] = made;
  const held = await ledger!.reserve(entry('lapse/1', alice, 'x'));
  assert.ok(held.ok);
  assert.equal((await other!.reserve(entry('lapse/2', alice, 'x'))).ok, false, 'the one place is reserved');
  made.redis[0]!.disconnect();
  await ledger!.release(held.reservation); // Redis unreachable on this connection: resolves all the same
  now += RETAINED_RESERVATION_LEASE_MS + 1;
  assert.equal((await other!.reserve(entry('lapse/2', alice, 'x'))).ok, true, 'the lapsed reservation was given back');
});

test('redis retained ledger - a store and a release through RetainedQuota never leave a rejection unhandled', async () => {
  const made = await ledgers(1);
  const [ledger] = made;
  const quota = new RetainedQuota(ledger!, { storeBeforeAck: true });
  const publish = { topic: 'q/1', payload: Buffer.from('v'), retain: true, qos: 1 };
  assert.equal(await quota.admit(publish, alice, { closed: false }), null);
  await quota.storeBeforeAck(publish);
  await quota.stored(publish); // aedes' own store afterwards: nothing more
  assert.deepEqual(await ledger!.usageOf('alice'), { messages: 1, bytes: 4 });
  const other = { topic: 'q/2', payload: Buffer.from('w'), retain: true, qos: 0 };
  const connection = { closed: false };
  assert.equal(await quota.admit(other, alice, connection), null);
  made.redis[0]!.disconnect();
  quota.connectionClosed(connection); // its release fails in Redis: no unhandled rejection
  quota.abandon(other);
  await new Promise((resolve) => setTimeout(resolve, 50));
});

test('redis retained ledger - a wildcard SUBSCRIBE gets each matching message once, topics with glob characters included; "$" topics only for filters that name them', async () => {
  const [ledger] = await ledgers(1, { ...LIMITS, maxRetainedMessages: 100, maxRetainedMessagesPerUser: 100, maxRetainedBytesPerUser: 100_000 });
  const topics = ['s/[1]/x', 's/*/x', 's/?/y', 's/a\\b', 's', 'sx/1', '$SYS/s', 'é/1'];
  for (const topic of topics) assert.equal(await store(ledger!, topic, alice, topic), null);
  assert.deepEqual(await retained(ledger!, ['s/#']), ['s/*/x=s/*/x', 's/?/y=s/?/y', 's/[1]/x=s/[1]/x', 's/a\\b=s/a\\b', 's=s'].sort());
  assert.deepEqual(await retained(ledger!, ['s/[1]/+', 's/+/x', 's/[1]/x']), ['s/*/x=s/*/x', 's/[1]/x=s/[1]/x'], 'each once');
  assert.deepEqual(await retained(ledger!, ['#']), topics.filter((topic) => !topic.startsWith('$')).map((topic) => `${topic}=${topic}`).sort());
  assert.deepEqual(await retained(ledger!, ['$SYS/#']), ['$SYS/s=$SYS/s']);
  assert.deepEqual(await retained(ledger!, ['é/+', 'nothing/here']), ['é/1=é/1']);
});
