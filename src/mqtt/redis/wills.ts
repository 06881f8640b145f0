import type { Redis } from 'ioredis';
import { defineScript, type RedisScript } from '../../redis/script.js';
import { decodePacket, encodePacket, type StoredPacket } from './packet-codec.js';
import { encodeId, stateKeys } from './keys.js';

/**
 * KEYS: will holders, instances, this instance's wills. ARGV: prefix, this instance, silent
 * since (ms). Moves to this instance the wills of every instance silent since then (or gone),
 * condemning it (see session-registry.ts): one script, so each will moves to one instance only.
 * Returns how many wills it took.
 */
const CLAIM = `
local holders, instances, mine = KEYS[1], KEYS[2], KEYS[3]
local prefix, me, silentSince = ARGV[1], ARGV[2], tonumber(ARGV[3])
local taken = 0
for _, holder in ipairs(redis.call('SMEMBERS', holders)) do
  if holder ~= me then
    local seen = redis.call('ZSCORE', instances, holder)
    if not seen or tonumber(seen) < silentSince then
      if seen and tonumber(seen) > 0 then
        redis.call('HSET', prefix .. 'instance-silent-since', holder, seen)
        redis.call('ZADD', instances, 0, holder)
      end
      local theirs = prefix .. 'wills:' .. holder
      local wills = redis.call('HGETALL', theirs)
      for i = 1, #wills, 2 do
        redis.call('HSET', mine, wills[i], wills[i + 1])
        taken = taken + 1
      end
      redis.call('DEL', theirs)
      redis.call('SREM', holders, holder)
    end
  end
end
return taken
`;

/** KEYS: this instance's wills. ARGV: field. Returns the will removed, or nil. */
const TAKE = `
local will = redis.call('HGET', KEYS[1], ARGV[1])
if will then redis.call('HDEL', KEYS[1], ARGV[1]) end
return will
`;

/** KEYS: this instance's wills, will holders. ARGV: this instance. Removes the wills of its own clients (a graceful stop, or it was condemned). */
const DROP_OWN = `
local own = ARGV[1] .. '/'
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, #own) == own then redis.call('HDEL', KEYS[1], field) end
end
return 1
`;

export interface RedisWillsOptions {
  /** This instance: aedes' broker id. */
  readonly instanceId: string;
  readonly keyPrefix: string;
  /** An instance silent this long is dead: its wills are published by another. */
  readonly silentAfterMs: number;
  readonly now?: () => number;
}

/**
 * The wills of the connected clients in Redis, each instance's in a hash of its own (field
 * `BROKERID/CLIENTID`). aedes publishes a will itself when its client's connection ends; the
 * wills of an instance that died (SIGKILL) are published by another: aedes asks its persistence
 * for wills (`streamWill`) on a timer, on every instance, and publishes those of brokers it has
 * not heard from, not atomically. Here, `claimDead` first moves the wills of silent instances to
 * the asking instance in one script, so that each goes to one instance, which publishes it
 * once; should that one die too before it has, they move on again.
 */
export class RedisWills {
  private readonly claimScript: RedisScript;
  private readonly takeScript: RedisScript;
  private readonly dropOwnScript: RedisScript;
  private readonly now: () => number;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisWillsOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.claimScript = defineScript(redis, 'bridgeWillsClaim', CLAIM);
    this.takeScript = defineScript(redis, 'bridgeWillsTake', TAKE);
    this.dropOwnScript = defineScript(redis, 'bridgeWillsDropOwn', DROP_OWN);
  }

  private get mine(): string {
    return stateKeys.wills(this.options.instanceId);
  }

  async put(clientId: string, will: Readonly<StoredPacket>): Promise<void> {
    const stored = { ...will, clientId, brokerId: this.options.instanceId };
    await this.redis.hset(this.mine, field(this.options.instanceId, clientId), encodePacket(stored));
  }

  async get(clientId: string): Promise<StoredPacket | null> {
    const will = await this.redis.hgetBuffer(this.mine, field(this.options.instanceId, clientId));
    return will ? decodePacket(will) : null;
  }

  /** Removes the will this instance holds for a client of `brokerId` (itself, or a dead instance whose wills it took); resolves to it. */
  async delete(clientId: string, brokerId: string | undefined): Promise<StoredPacket | null> {
    if (brokerId === undefined) return null; // aedes asks so at CONNECT, for a broker it does not name
    const will = (await this.takeScript.runBuffer([this.mine], [field(brokerId, clientId)])) as Buffer | null;
    return will ? decodePacket(will) : null;
  }

  /** Takes the wills of dead instances, then gives every will this instance holds for them. */
  async *claimDead(): AsyncGenerator<StoredPacket> {
    await this.claimScript.run([stateKeys.willHolders, stateKeys.instances, this.mine], [this.options.keyPrefix, this.options.instanceId, this.now() - this.options.silentAfterMs]);
    const own = `${this.options.instanceId}/`;
    for (const [name, will] of Object.entries(await this.redis.hgetallBuffer(this.mine))) {
      if (!name.startsWith(own)) yield decodePacket(will);
    }
  }

  /** Removes the wills of this instance's own clients. */
  async dropOwn(): Promise<void> {
    await this.dropOwnScript.run([this.mine, stateKeys.willHolders], [this.options.instanceId]);
  }
}

function field(brokerId: string, clientId: string): string {
  return `${brokerId}/${encodeId(clientId)}`;
}
