import type { Redis } from 'ioredis';
import { PENDING_QOS2_ENTRY_BYTES } from '../../config/schema.js';
import { defineScript, type RedisScript } from '../../redis/script.js';
import { stateKeys } from './keys.js';

/** KEYS: the session's set. ARGV: packet id, most ids kept (-1: no bound). Returns -1 when recorded (or there already), else how many the session holds. */
const ADD = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return -1 end
local held = redis.call('SCARD', KEYS[1])
local max = tonumber(ARGV[2])
if max >= 0 and held + 1 > max then return held end
redis.call('SADD', KEYS[1], ARGV[1])
return -1
`;

export type Qos2Admission = { readonly ok: true } | { readonly ok: false; readonly heldBytes: number };

/**
 * The QoS 2 receive state of each session in Redis, as the memory store's PendingQos2 keeps it:
 * the packet ids of PUBLISHes taken and awaiting PUBREL (one set per session), never their
 * payloads, bounded in bytes per session (each id counts PENDING_QOS2_ENTRY_BYTES). The bound
 * is checked and the id recorded in one script, so two connections of a session racing cannot
 * pass it together.
 */
export class RedisPendingQos2 {
  private readonly addScript: RedisScript;
  private readonly maxIds: number;

  constructor(
    private readonly redis: Redis,
    maxBytesPerSession: number,
  ) {
    this.addScript = defineScript(redis, 'bridgeQos2Add', ADD);
    this.maxIds = Number.isFinite(maxBytesPerSession) ? Math.floor(maxBytesPerSession / PENDING_QOS2_ENTRY_BYTES) : -1;
  }

  async add(clientId: string, messageId: number): Promise<Qos2Admission> {
    const held = Number(await this.addScript.run([stateKeys.qos2(clientId)], [messageId, this.maxIds]));
    return held < 0 ? { ok: true } : { ok: false, heldBytes: held * PENDING_QOS2_ENTRY_BYTES };
  }

  async has(clientId: string, messageId: number): Promise<boolean> {
    return (await this.redis.sismember(stateKeys.qos2(clientId), String(messageId))) === 1;
  }

  /** Forgets a packet id; false when it was not there. */
  async delete(clientId: string, messageId: number): Promise<boolean> {
    return (await this.redis.srem(stateKeys.qos2(clientId), String(messageId))) === 1;
  }

  async clear(clientId: string): Promise<void> {
    await this.redis.del(stateKeys.qos2(clientId));
  }

  async bytesOf(clientId: string): Promise<number> {
    return (await this.redis.scard(stateKeys.qos2(clientId))) * PENDING_QOS2_ENTRY_BYTES;
  }
}
