import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { BridgeError } from '../../errors.js';
import { defineScript, type RedisScript } from '../../redis/script.js';
import { levelsOf, levelsMatch } from '../../protocol/mqtt.js';
import type { RetainedLimitName } from '../limits.js';
import {
  retainedBytes,
  type RetainedAdmission,
  type RetainedEntry,
  type RetainedLedger,
  type RetainedLimits,
  type RetainedOwner,
  type RetainedReservation,
  type RetainedUsage,
} from '../retained-ledger.js';
import { decodePacket, encodePacket, type StoredPacket } from './packet-codec.js';
import { stateKeys } from './keys.js';

/**
 * How long a reservation holds its room at most. A publish is normally stored (or given up)
 * within its AMQP confirm; one held longer (RabbitMQ blocked, an instance killed between the
 * check and the store) stops holding room after this. The counts of what is stored stay exact;
 * only publishes checked at the same time could then together pass a limit.
 */
export const RETAINED_RESERVATION_LEASE_MS = 10 * 60_000;

/** Lapsed reservations given back per reservation made. */
const LAPSED_PER_RESERVE = 100;

/** Retained messages read per HSCAN step when a SUBSCRIBE with a wildcard asks for them. */
const SCAN_COUNT = 200;

const RESERVED_KEYS = [stateKeys.retainedReserved, stateKeys.retainedReservations, stateKeys.retainedReservationExpiry];

// Counts are kept in hashes: `m`, `b` (totals) and `m:OWNER`, `b:OWNER` (per user). A user's
// fields are removed when they fall to zero, so the hashes hold only the users holding something.
// Numbers are written with %d: Lua writes -0 as "-0" and large ones as "1e+15", which Redis refuses.
const PRELUDE = `
local function int(n) return string.format('%d', n) end
local function add(hash, owner, messages, bytes)
  local m = owner == '' and 'm' or ('m:' .. owner)
  local b = owner == '' and 'b' or ('b:' .. owner)
  local left = redis.call('HINCRBY', hash, m, int(messages)) + redis.call('HINCRBY', hash, b, int(bytes))
  if owner ~= '' and left == 0 then redis.call('HDEL', hash, m, b) end
end
local function giveBack(reserved, reservations, expiry, id)
  local held = redis.call('HGET', reservations, id)
  if not held then return end
  local tm, tb, um, ub, owner = string.match(held, '^(%d+)|(%d+)|(%d+)|(%d+)|(.*)$')
  add(reserved, '', -tonumber(tm), -tonumber(tb))
  if owner ~= '' then add(reserved, owner, -tonumber(um), -tonumber(ub)) end
  redis.call('HDEL', reservations, id)
  redis.call('ZREM', expiry, id)
end
local function entry(entries, topic)
  local held = redis.call('HGET', entries, topic)
  if not held then return nil end
  local bytes, owner = string.match(held, '^(%d+)|(.*)$')
  return { bytes = tonumber(bytes), owner = owner }
end
`;

/**
 * KEYS: entries, usage, reserved, reservations, expiry. ARGV: topic, owner, bytes, now, lapse
 * time, max messages, max bytes, max messages per user, max bytes per user, reservation id.
 * The same check as MemoryRetainedLedger.reserve. Returns {1} or {0, limit}.
 */
const RESERVE = `${PRELUDE}
local entries, usage, reserved, reservations, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', ARGV[4], 'LIMIT', 0, ${LAPSED_PER_RESERVE})) do
  giveBack(reserved, reservations, expiry, lapsed)
end
local id = ARGV[10]
if redis.call('HEXISTS', reservations, id) == 1 then return {1} end
local topic, owner, bytes = ARGV[1], ARGV[2], tonumber(ARGV[3])
local existing = entry(entries, topic)
local tm, tb = 1, bytes
if existing then tm, tb = 0, math.max(0, bytes - existing.bytes) end
local um, ub = 1, bytes
if existing and existing.owner ~= '' and owner ~= '' and existing.owner == owner then um, ub = 0, math.max(0, bytes - existing.bytes) end
local function exceeds(charge, field, max)
  if charge <= 0 then return false end
  local held = tonumber(redis.call('HGET', usage, field) or '0') + tonumber(redis.call('HGET', reserved, field) or '0')
  return held + charge > max
end
if owner ~= '' then
  if exceeds(um, 'm:' .. owner, tonumber(ARGV[8])) then return {0, 'retained_messages_per_user'} end
  if exceeds(ub, 'b:' .. owner, tonumber(ARGV[9])) then return {0, 'retained_bytes_per_user'} end
end
if exceeds(tm, 'm', tonumber(ARGV[6])) then return {0, 'retained_messages'} end
if exceeds(tb, 'b', tonumber(ARGV[7])) then return {0, 'retained_bytes'} end
add(reserved, '', tm, tb)
if owner ~= '' then add(reserved, owner, um, ub) end
redis.call('HSET', reservations, id, int(tm) .. '|' .. int(tb) .. '|' .. int(um) .. '|' .. int(ub) .. '|' .. owner)
redis.call('ZADD', expiry, ARGV[5], id)
return {1}
`;

/** KEYS: reserved, reservations, expiry. ARGV: reservation id. */
const RELEASE = `${PRELUDE}
giveBack(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return 1
`;

/**
 * KEYS: entries, usage, reserved, reservations, expiry, messages. ARGV: topic, owner, bytes,
 * reservation id (or empty), the message (empty: the topic is cleared). Stores (or clears) the
 * retained message and counts it in one step. Returns the totals.
 */
const STORED = `${PRELUDE}
local entries, usage, reserved, reservations, expiry, messages = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local topic, owner, bytes = ARGV[1], ARGV[2], tonumber(ARGV[3])
if ARGV[4] ~= '' then giveBack(reserved, reservations, expiry, ARGV[4]) end
local existing = entry(entries, topic)
if existing then
  add(usage, '', -1, -existing.bytes)
  if existing.owner ~= '' then add(usage, existing.owner, -1, -existing.bytes) end
  redis.call('HDEL', entries, topic)
end
if ARGV[5] == '' then
  redis.call('HDEL', messages, topic)
else
  redis.call('HSET', messages, topic, ARGV[5])
  redis.call('HSET', entries, topic, int(bytes) .. '|' .. owner)
  add(usage, '', 1, bytes)
  if owner ~= '' then add(usage, owner, 1, bytes) end
end
return redis.call('HMGET', usage, 'm', 'b')
`;

class RedisReservation implements RetainedReservation {
  constructor(
    readonly id: string,
    readonly topic: string,
    readonly owner: RetainedOwner,
  ) {}
}

/** An owner as the Redis counts name it: '' counts in the totals only, `a` the anonymous clients, `u:NAME` a user. */
function ownerField(owner: RetainedOwner): string {
  if (owner === null) return '';
  return owner.username === null ? 'a' : `u:${owner.username}`;
}

/**
 * The retained messages and their counts in Redis, shared by every bridge on that Redis: the
 * limits hold over the fleet. Each check reserves its room, and each store commits it and
 * stores the message, in one Lua script (atomic: publishes checked at the same time on several
 * instances cannot together pass a limit). Reservations lapse after
 * RETAINED_RESERVATION_LEASE_MS, so that one an instance never settled (it was killed) does not
 * hold room for ever. `release` never rejects.
 */
export class RedisRetainedLedger implements RetainedLedger {
  private readonly reserveScript: RedisScript;
  private readonly releaseScript: RedisScript;
  private readonly storedScript: RedisScript;
  private lastUsage: RetainedUsage = { messages: 0, bytes: 0 };

  constructor(
    private readonly redis: Redis,
    private readonly limits: RetainedLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.reserveScript = defineScript(redis, 'bridgeRetainedReserve', RESERVE);
    this.releaseScript = defineScript(redis, 'bridgeRetainedRelease', RELEASE);
    this.storedScript = defineScript(redis, 'bridgeRetainedStored', STORED);
  }

  async reserve(entry: RetainedEntry): Promise<RetainedAdmission> {
    const id = randomUUID();
    const now = this.now();
    const answer = (await this.reserveScript.run(
      [stateKeys.retainedEntries, stateKeys.retainedUsage, ...RESERVED_KEYS],
      [
        entry.topic,
        ownerField(entry.owner),
        retainedBytes(entry),
        now,
        now + RETAINED_RESERVATION_LEASE_MS,
        this.limits.maxRetainedMessages,
        this.limits.maxRetainedBytes,
        this.limits.maxRetainedMessagesPerUser,
        this.limits.maxRetainedBytesPerUser,
        id,
      ],
    )) as [number, string?];
    if (answer[0] !== 1) return { ok: false, limit: answer[1] as RetainedLimitName };
    return { ok: true, reservation: new RedisReservation(id, entry.topic, entry.owner) };
  }

  async stored(entry: RetainedEntry, reservation?: RetainedReservation): Promise<void> {
    const reservationId = reservation ? this.own(reservation).id : '';
    if (entry.payloadBytes > 0 && !entry.message) throw new BridgeError('BRIDGE_ERR_INTERNAL', 'the Redis ledger stores the message with its count: it needs the message');
    const message = entry.payloadBytes === 0 ? '' : encodePacket({ cmd: 'publish', topic: entry.topic, payload: entry.message!.payload, qos: entry.message!.qos ?? 0, retain: true });
    try {
      const totals = (await this.storedScript.run(
        [stateKeys.retainedEntries, stateKeys.retainedUsage, ...RESERVED_KEYS, stateKeys.retainedMessages],
        [entry.topic, ownerField(entry.owner), entry.payloadBytes === 0 ? 0 : retainedBytes(entry), reservationId, message],
      )) as [string | null, string | null];
      this.lastUsage = { messages: Number(totals[0] ?? 0), bytes: Number(totals[1] ?? 0) };
    } catch (error) {
      if (reservation) void this.release(reservation);
      throw error;
    }
  }

  async release(reservation: RetainedReservation): Promise<void> {
    try {
      await this.releaseScript.run(RESERVED_KEYS, [this.own(reservation).id]);
    } catch {
      // Redis is away: the reservation lapses (RETAINED_RESERVATION_LEASE_MS) instead.
    }
  }

  /** The totals as this instance last saw them (each store tells them; `refresh` reads them). */
  usage(): RetainedUsage {
    return this.lastUsage;
  }

  /** Reads the totals from Redis (other instances store too). */
  async refresh(): Promise<RetainedUsage> {
    const [messages, bytes] = await this.redis.hmget(stateKeys.retainedUsage, 'm', 'b');
    this.lastUsage = { messages: Number(messages ?? 0), bytes: Number(bytes ?? 0) };
    return this.lastUsage;
  }

  /** What one user has stored (null: the anonymous clients). */
  async usageOf(username: string | null): Promise<RetainedUsage> {
    const owner = ownerField({ username });
    const [messages, bytes] = await this.redis.hmget(stateKeys.retainedUsage, `m:${owner}`, `b:${owner}`);
    return { messages: Number(messages ?? 0), bytes: Number(bytes ?? 0) };
  }

  /** The room reserved now, in total or for one user. */
  async reserved(username?: string | null): Promise<RetainedUsage> {
    const owner = username === undefined ? '' : ownerField({ username });
    const [messages, bytes] = await this.redis.hmget(stateKeys.retainedReserved, owner === '' ? 'm' : `m:${owner}`, owner === '' ? 'b' : `b:${owner}`);
    return { messages: Number(messages ?? 0), bytes: Number(bytes ?? 0) };
  }

  /**
   * The retained messages matching any of these filters, each once: a filter without wildcards
   * is one HGET; those with wildcards are one HSCAN of the topics that start with their common
   * literal prefix (its glob characters escaped), filtered as MQTT matches.
   */
  async *match(filters: readonly string[]): AsyncGenerator<StoredPacket> {
    const sent = new Set<string>();
    const wildcards: string[][] = [];
    for (const filter of filters) {
      const levels = levelsOf(filter);
      if (!levels.some((level) => level === '+' || level === '#')) {
        if (sent.has(filter)) continue;
        const value = await this.redis.hgetBuffer(stateKeys.retainedMessages, filter);
        if (!value) continue;
        sent.add(filter);
        yield decodePacket(value);
        continue;
      }
      wildcards.push(levels);
    }
    if (wildcards.length === 0) return;
    const prefix = commonPrefix(wildcards.map(literalPrefix));
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    do {
      const [next, fields] = await this.redis.hscanBuffer(stateKeys.retainedMessages, cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next.toString();
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const topic = fields[i]!.toString('utf8');
        if (sent.has(topic)) continue;
        const levels = levelsOf(topic);
        if (!wildcards.some((filter) => levelsMatch(filter, levels))) continue;
        sent.add(topic);
        yield decodePacket(fields[i + 1]!);
      }
    } while (cursor !== '0');
  }

  private own(reservation: RetainedReservation): RedisReservation {
    if (!(reservation instanceof RedisReservation)) throw new BridgeError('BRIDGE_ERR_INTERNAL', 'not a reservation of this ledger');
    return reservation;
  }
}

/** The levels before a filter's first wildcard, joined: every topic it matches starts with it ("a/#" matches "a" too, so no separator after it). */
function literalPrefix(levels: readonly string[]): string {
  const first = levels.findIndex((level) => level === '+' || level === '#');
  return levels.slice(0, first).join('/');
}

function commonPrefix(texts: readonly string[]): string {
  let prefix = texts[0] ?? '';
  for (const text of texts) {
    let i = 0;
    while (i < prefix.length && i < text.length && prefix[i] === text[i]) i++;
    prefix = prefix.slice(0, i);
  }
  // Not half of a surrogate pair: the prefix must stay valid UTF-8 to match anything.
  return /[\uD800-\uDBFF]$/.test(prefix) ? prefix.slice(0, -1) : prefix;
}
