import type { Redis } from 'ioredis';
import { defineScript, type RedisScript } from '../../redis/script.js';
import { BridgeError, packetNotFound } from '../../errors.js';
import { decodePacket, encodePacket, type StoredPacket } from './packet-codec.js';
import { stateKeys } from './keys.js';

export interface RedisOfflineQueueOptions {
  /** QoS 1/2 messages kept per session; past this the oldest not yet sent is dropped. */
  readonly maxOfflineMessages: number;
  /** Called for each message dropped that way. */
  readonly onDropped: (clientId: string) => void;
}

/** A session a message is queued for, and how many of its subscriptions matched. */
export interface QueueTarget {
  readonly clientId: string;
  readonly subscriptions: number;
}

/** A message or PUBREL as the queue gives it back: with the packet id it was sent with, if it was. */
export type QueuedPacket = StoredPacket;

/** Queued messages read per round trip when a session's queue is sent. */
const STREAM_BATCH = 100;

// Drops the oldest message of a queue not sent yet (all are sent: the oldest), with its state.
const DROP_OLDEST_UNSENT = `
local function dropOldestUnsent(queue, packets, state, length)
  local victim = nil
  local start = 0
  while victim == nil and start < length do
    local ids = redis.call('LRANGE', queue, start, start + 63)
    for _, candidate in ipairs(ids) do
      if redis.call('HEXISTS', state, 'i:' .. candidate) == 0 then
        victim = candidate
        break
      end
    end
    start = start + 64
  end
  if victim == nil then victim = redis.call('LINDEX', queue, 0) end
  redis.call('LREM', queue, 1, victim)
  redis.call('HDEL', packets, victim)
  local sent = redis.call('HGET', state, 'i:' .. victim)
  if sent and redis.call('HGET', state, 'm:' .. sent) == victim then redis.call('HDEL', state, 'm:' .. sent) end
  redis.call('HDEL', state, 'i:' .. victim, 'n:' .. victim)
end
`;

/**
 * KEYS: queue, packets, state of each session. ARGV: message id, packet, max, then per session
 * how many of its subscriptions matched. Returns per session how many messages were dropped.
 * Queuing the same message for a session twice changes nothing (a command resent after a
 * reconnect to Redis).
 */
const ENQUEUE = `${DROP_OLDEST_UNSENT}
local id, packet, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
local dropped = {}
for i = 1, #KEYS / 3 do
  local queue, packets, state = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local count = 0
  if redis.call('HSETNX', packets, id, packet) == 1 then
    redis.call('RPUSH', queue, id)
    local subscriptions = tonumber(ARGV[3 + i])
    if subscriptions > 1 then redis.call('HSET', state, 'n:' .. id, subscriptions) end
    local length = redis.call('LLEN', queue)
    while length > max do
      dropOldestUnsent(queue, packets, state, length)
      length = length - 1
      count = count + 1
    end
  end
  dropped[i] = count
end
return dropped
`;

/**
 * KEYS: packets, state. ARGV: message id (empty for a PUBREL), packet id, the PUBREL.
 * A PUBLISH being sent records its packet id; a PUBREL replaces the PUBLISH sent with its
 * packet id. Returns 0 when the queue holds no such message.
 */
const UPDATE = `
local packets, state = KEYS[1], KEYS[2]
local id, messageId = ARGV[1], ARGV[2]
if id ~= '' then
  if redis.call('HEXISTS', packets, id) == 0 then return 0 end
  local old = redis.call('HGET', state, 'i:' .. id)
  if old and redis.call('HGET', state, 'm:' .. old) == id then redis.call('HDEL', state, 'm:' .. old) end
  redis.call('HSET', state, 'i:' .. id, messageId, 'm:' .. messageId, id)
  return 1
end
local sent = redis.call('HGET', state, 'm:' .. messageId)
if not sent then return 0 end
redis.call('HSET', packets, sent, ARGV[3])
return 1
`;

/**
 * KEYS: queue, packets, state. ARGV: packet id (empty for a message not sent), message id.
 * A message sent is named by its packet id; one not sent by its message id, and then only one
 * of the subscriptions that queued it lets go of it (see OfflineQueues.clear). Returns the
 * packet removed, or nil.
 */
const CLEAR = `
local queue, packets, state = KEYS[1], KEYS[2], KEYS[3]
local id
if ARGV[1] ~= '' then
  id = redis.call('HGET', state, 'm:' .. ARGV[1])
  if not id then return false end
else
  id = ARGV[2]
  if redis.call('HEXISTS', state, 'i:' .. id) == 1 then return false end
  local holders = tonumber(redis.call('HGET', state, 'n:' .. id) or '1')
  if holders > 1 then
    redis.call('HSET', state, 'n:' .. id, holders - 1)
    return false
  end
end
local packet = redis.call('HGET', packets, id)
redis.call('LREM', queue, 1, id)
redis.call('HDEL', packets, id)
local sent = redis.call('HGET', state, 'i:' .. id)
if sent and redis.call('HGET', state, 'm:' .. sent) == id then redis.call('HDEL', state, 'm:' .. sent) end
redis.call('HDEL', state, 'i:' .. id, 'n:' .. id)
return packet
`;

/**
 * Each persistent session's queue of QoS 1/2 messages in Redis, with the semantics of the memory
 * store's OfflineQueues: bounded (past `maxOfflineMessages` the oldest message not yet sent is
 * dropped and counted: the one arriving when all the others are in flight), a message in flight
 * keeps its packet id, a PUBREL replaces its PUBLISH. One difference: a message several of a
 * session's subscriptions match is queued once (it is sent once either way: aedes drops the
 * duplicate as it sends it). Every change is one Lua script, one round trip; queuing a message
 * for all the sessions it goes to is one.
 */
export class RedisOfflineQueues {
  private readonly enqueueScript: RedisScript;
  private readonly updateScript: RedisScript;
  private readonly clearScript: RedisScript;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisOfflineQueueOptions,
  ) {
    this.enqueueScript = defineScript(redis, 'bridgeQueueEnqueue', ENQUEUE);
    this.updateScript = defineScript(redis, 'bridgeQueueUpdate', UPDATE);
    this.clearScript = defineScript(redis, 'bridgeQueueClear', CLEAR);
  }

  /** Queues a message for these sessions; resolves once Redis holds it. */
  async enqueue(targets: readonly QueueTarget[], packet: Readonly<StoredPacket> & { brokerId: string; brokerCounter: number }): Promise<void> {
    if (targets.length === 0) return;
    const keys = targets.flatMap(({ clientId }) => [stateKeys.queue(clientId), stateKeys.queuePackets(clientId), stateKeys.queueState(clientId)]);
    const stored = { ...packet, messageId: undefined };
    const dropped = (await this.enqueueScript.run(keys, [messageKey(packet), encodePacket(stored), this.options.maxOfflineMessages, ...targets.map((target) => target.subscriptions)])) as number[];
    targets.forEach(({ clientId }, index) => {
      for (let i = 0; i < (dropped[index] ?? 0); i++) this.options.onDropped(clientId);
    });
  }

  /** Records the packet id a queued message was sent with, or replaces a PUBLISH by its PUBREL. */
  async update(clientId: string, packet: Readonly<StoredPacket>): Promise<void> {
    const isPublish = packet.cmd === 'publish' && packet.brokerId !== undefined && packet.brokerCounter !== undefined;
    const id = isPublish ? messageKey(packet as { brokerId: string; brokerCounter: number }) : '';
    const pubrel = isPublish ? '' : encodePacket(packet);
    const updated = await this.updateScript.run([stateKeys.queuePackets(clientId), stateKeys.queueState(clientId)], [id, packet.messageId ?? 0, pubrel]);
    if (updated !== 1) throw packetNotFound();
  }

  /** Removes a message: one sent by its packet id, one not sent by its message id; resolves to what was removed. */
  async clear(clientId: string, packet: { messageId?: number | undefined; brokerId?: string; brokerCounter?: number }): Promise<QueuedPacket | undefined> {
    const byPacketId = packet.messageId !== undefined;
    if (!byPacketId && (packet.brokerId === undefined || packet.brokerCounter === undefined)) return undefined;
    const removed = (await this.clearScript.runBuffer(
      [stateKeys.queue(clientId), stateKeys.queuePackets(clientId), stateKeys.queueState(clientId)],
      [byPacketId ? String(packet.messageId) : '', byPacketId ? '' : messageKey(packet as { brokerId: string; brokerCounter: number })],
    )) as Buffer | null;
    if (!removed) return undefined;
    const decoded = decodePacket(removed);
    if (byPacketId) decoded.messageId = packet.messageId;
    return decoded;
  }

  /**
   * What a session has queued, oldest first, each with the packet id it was sent with (if it
   * was): the queue as it is when the stream starts, told to `onSnapshot`, and each message's id
   * told to `onYield` as it is given (ids as `messageKey` names them).
   */
  async *stream(clientId: string, onSnapshot?: (ids: readonly string[]) => void, onYield?: (id: string) => void): AsyncGenerator<QueuedPacket> {
    const ids = await this.redis.lrange(stateKeys.queue(clientId), 0, -1);
    onSnapshot?.(ids);
    for (let start = 0; start < ids.length; start += STREAM_BATCH) {
      const batch = ids.slice(start, start + STREAM_BATCH);
      const replies = await this.redis
        .pipeline()
        .hmgetBuffer(stateKeys.queuePackets(clientId), ...batch)
        .hmget(stateKeys.queueState(clientId), ...batch.map((id) => `i:${id}`))
        .exec();
      const failed = replies?.find(([error]) => error)?.[0];
      if (!replies || failed) throw failed ?? new BridgeError('BRIDGE_ERR_INTERNAL', 'no reply from Redis');
      const packets = replies[0]![1] as Array<Buffer | null>;
      const sent = replies[1]![1] as Array<string | null>;
      for (let i = 0; i < batch.length; i++) {
        const encoded = packets[i];
        if (!encoded) continue; // acknowledged meanwhile
        const packet = decodePacket(encoded);
        const messageId = sent[i];
        if (packet.cmd === 'publish' && messageId !== null && messageId !== undefined) packet.messageId = Number(messageId);
        onYield?.(batch[i]!);
        yield packet;
      }
    }
  }

  /** How many messages a session has queued. */
  length(clientId: string): Promise<number> {
    return this.redis.llen(stateKeys.queue(clientId));
  }

  /** Forgets everything queued for a session (it ended). */
  async drop(clientId: string): Promise<void> {
    await this.redis.del(stateKeys.queue(clientId), stateKeys.queuePackets(clientId), stateKeys.queueState(clientId));
  }
}

/** A message's id in a queue: the broker that took it in and its counter there. */
export function messageKey(packet: { brokerId: string; brokerCounter: number }): string {
  return `${packet.brokerId}:${packet.brokerCounter}`;
}

