import type { Redis } from 'ioredis';
import { BridgeError } from '../../errors.js';
import { defineScript, type RedisScript } from '../../redis/script.js';
import type { ClaimRequest, ClaimResult, SessionCounts, SessionHolder, SessionRegistry } from '../session-registry.js';
import { decodeId, encodeId, stateKeys } from './keys.js';

/** Offline sessions looked at per expiry sweep (the next sweep goes on). */
const EXPIRY_BATCH = 1_000;

/** Sessions of a dead instance set offline per script run. */
const REAP_BATCH = 500;

// An instance's score in `instances` is when it last said it is alive; 0 once another instance
// found it silent for too long and began to take over its sessions or wills ("condemned").

/** Puts the sessions an instance's connections held offline (persistent) or ends them (clean), as if each connection had closed at `since`. */
const RELEASE_INSTANCE = `
local function releaseInstance(prefix, offline, instance, since, batch)
  local set = prefix .. 'instance-sessions:' .. instance
  local ids = redis.call('SPOP', set, batch)
  for _, id in ipairs(ids) do
    local session = prefix .. 'session:' .. id
    local held = redis.call('HMGET', session, 'p', 'c')
    if held[2] and string.sub(held[2], 1, #instance + 1) == instance .. '/' then
      if held[1] == '1' then
        redis.call('HSET', session, 'c', '', 't', since)
        redis.call('ZADD', offline, since, id)
      else
        redis.call('DEL', session)
      end
    end
  end
  return #ids, redis.call('SCARD', set)
end
`;

/** KEYS: session, offline, per owner, this instance's sessions. ARGV: prefix, encoded client id, owner, persistent, max persistent sessions, connection, instance. */
const CLAIM = `
local session, offline, perOwner, mine = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, id, owner, persistent, max, conn, instance = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5]), ARGV[6], ARGV[7]
local held = redis.call('HMGET', session, 'o', 'p', 'c')
local heldOwner, heldPersistent, heldConn = held[1], held[2] == '1', held[3]
if heldOwner and heldOwner ~= owner then return {0, 'owned_by_another'} end
if persistent and not heldPersistent then
  if tonumber(redis.call('HGET', perOwner, owner) or '0') >= max then return {0, 'sessions_per_user'} end
  redis.call('HINCRBY', perOwner, owner, 1)
elseif heldPersistent and not persistent then
  if redis.call('HINCRBY', perOwner, owner, -1) <= 0 then redis.call('HDEL', perOwner, owner) end
end
if heldConn and heldConn ~= '' then
  local other = string.match(heldConn, '^(.*)/%d+$')
  if other and other ~= instance then redis.call('SREM', prefix .. 'instance-sessions:' .. other, id) end
end
redis.call('HSET', session, 'o', owner, 'p', persistent and '1' or '0', 'c', conn, 't', 0)
redis.call('ZREM', offline, id)
redis.call('SADD', mine, id)
return {1, redis.call('ZCARD', offline)}
`;

/** KEYS: session, offline, this instance's sessions. ARGV: encoded client id, connection, now. Returns the offline sessions. */
const RELEASE = `
if redis.call('HGET', KEYS[1], 'c') == ARGV[2] then
  redis.call('SREM', KEYS[3], ARGV[1])
  if redis.call('HGET', KEYS[1], 'p') == '1' then
    redis.call('HSET', KEYS[1], 'c', '', 't', ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  else
    redis.call('DEL', KEYS[1])
  end
end
return redis.call('ZCARD', KEYS[2])
`;

/** KEYS: session, offline, per owner. ARGV: encoded client id. Returns {forgotten (1 or 0), the offline sessions}. */
const FORGET = `
local held = redis.call('HMGET', KEYS[1], 'o', 'p', 'c')
if not held[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0, redis.call('ZCARD', KEYS[2])}
end
if held[3] and held[3] ~= '' then return {0, redis.call('ZCARD', KEYS[2])} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if held[2] == '1' and redis.call('HINCRBY', KEYS[3], held[1], -1) <= 0 then redis.call('HDEL', KEYS[3], held[1]) end
return {1, redis.call('ZCARD', KEYS[2])}
`;

/**
 * KEYS: instances, offline, will holders. ARGV: prefix, instance, now, joining. Says this
 * instance is alive; when joining, first puts back what an earlier life under this id left
 * held. Returns the offline sessions, or -1 when the others condemned it (it must start over).
 */
const HEARTBEAT = `${RELEASE_INSTANCE}
local instances, offline, holders = KEYS[1], KEYS[2], KEYS[3]
local prefix, instance, now, joining = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local seen = redis.call('ZSCORE', instances, instance)
if not joining and (not seen or tonumber(seen) == 0) then return -1 end
if joining then
  local left = 1
  while left > 0 do
    local _, remaining = releaseInstance(prefix, offline, instance, now, ${REAP_BATCH})
    left = remaining
  end
  redis.call('HDEL', prefix .. 'instance-silent-since', instance)
  redis.call('SADD', holders, instance)
end
redis.call('ZADD', instances, now, instance)
return redis.call('ZCARD', offline)
`;

/**
 * KEYS: instances, offline. ARGV: prefix, silent since (ms). Condemns one instance silent since
 * then and puts up to a batch of its sessions offline; it leaves \`instances\` once none is left.
 * Returns how many sessions it released, or nil when no instance is silent.
 */
const REAP = `${RELEASE_INSTANCE}
local instances, offline, prefix = KEYS[1], KEYS[2], ARGV[1]
local silent = redis.call('ZRANGEBYSCORE', instances, '-inf', '(' .. ARGV[2], 'LIMIT', 0, 1)
if #silent == 0 then return false end
local instance = silent[1]
local since = redis.call('ZSCORE', instances, instance)
if tonumber(since) > 0 then
  redis.call('HSET', prefix .. 'instance-silent-since', instance, since)
  redis.call('ZADD', instances, 0, instance)
else
  since = redis.call('HGET', prefix .. 'instance-silent-since', instance) or ARGV[2]
end
local released, remaining = releaseInstance(prefix, offline, instance, since, ${REAP_BATCH})
if remaining == 0 then
  redis.call('ZREM', instances, instance)
  redis.call('HDEL', prefix .. 'instance-silent-since', instance)
end
return released
`;

/** KEYS: instances, offline. ARGV: prefix, instance, now. A graceful stop: everything it held goes offline, and it leaves. */
const LEAVE = `${RELEASE_INSTANCE}
local left = 1
while left > 0 do
  local _, remaining = releaseInstance(ARGV[1], KEYS[2], ARGV[2], ARGV[3], ${REAP_BATCH})
  left = remaining
end
redis.call('ZREM', KEYS[1], ARGV[2])
return 1
`;

export interface RedisSessionRegistryOptions {
  /** This instance: aedes' broker id. */
  readonly instanceId: string;
  /** The connection's key prefix (scripts that build key names need it). */
  readonly keyPrefix: string;
  readonly now?: () => number;
  /** A release that could not be recorded now (it is tried again on each heartbeat). */
  readonly onReleaseFailed?: (clientId: string, error: unknown) => void;
  /** A connection of this instance took a client id (its CONNECT goes on). */
  readonly onClaimed?: (clientId: string) => void;
}

/**
 * The session registry in Redis, shared by every bridge on it: the same rules as
 * MemorySessionRegistry, each claim, release and forget one Lua script (atomic across
 * instances). A connection's hold is recorded as INSTANCE/CLAIM, and each instance lists the
 * client ids its connections hold, so that when an instance dies (SIGKILL) another, finding it
 * silent, puts its sessions offline (`reapSilent`): they then expire as if their clients had left
 * then. `release` records in the background and retries (`retryReleases`) what failed.
 */
export class RedisSessionRegistry implements SessionRegistry {
  private readonly claimScript: RedisScript;
  private readonly releaseScript: RedisScript;
  private readonly forgetScript: RedisScript;
  private readonly heartbeatScript: RedisScript;
  private readonly reapScript: RedisScript;
  private readonly leaveScript: RedisScript;
  private readonly now: () => number;
  private lastClaim = 0;
  /** The connections of this instance holding client ids, by client id: their claim. */
  private readonly held = new Map<string, number>();
  /** Releases Redis has not recorded yet: client id -> the connection that let go. */
  private readonly unrecorded = new Map<string, string>();
  private readonly recording = new Set<Promise<void>>();
  private offline = 0;

  constructor(
    private readonly redis: Redis,
    private readonly options: RedisSessionRegistryOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.claimScript = defineScript(redis, 'bridgeSessionClaim', CLAIM);
    this.releaseScript = defineScript(redis, 'bridgeSessionRelease', RELEASE);
    this.forgetScript = defineScript(redis, 'bridgeSessionForget', FORGET);
    this.heartbeatScript = defineScript(redis, 'bridgeInstanceHeartbeat', HEARTBEAT);
    this.reapScript = defineScript(redis, 'bridgeInstanceReap', REAP);
    this.leaveScript = defineScript(redis, 'bridgeInstanceLeave', LEAVE);
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const claim = ++this.lastClaim;
    const id = encodeId(request.clientId);
    const answer = (await this.claimScript.run(
      [stateKeys.session(request.clientId), stateKeys.sessionsOffline, stateKeys.sessionsPerOwner, stateKeys.instanceSessions(this.options.instanceId)],
      [this.options.keyPrefix, id, request.owner, request.persistent ? '1' : '0', request.maxPersistentSessions, this.connection(claim), this.options.instanceId],
    )) as [0, 'owned_by_another' | 'sessions_per_user'] | [1, number];
    if (answer[0] !== 1) return { ok: false, reason: answer[1] };
    this.offline = answer[1];
    this.held.set(request.clientId, claim);
    this.unrecorded.delete(request.clientId);
    this.options.onClaimed?.(request.clientId);
    return { ok: true, claim };
  }

  release(clientId: string, claim: number): void {
    if (this.held.get(clientId) !== claim) return; // a newer connection of this instance holds the id
    this.held.delete(clientId);
    this.record(clientId, this.connection(claim));
  }

  async offlineSince(offlineBefore: number): Promise<string[]> {
    const ids = await this.redis.zrangebyscore(stateKeys.sessionsOffline, '-inf', offlineBefore, 'LIMIT', 0, EXPIRY_BATCH);
    return ids.map(decodeId);
  }

  async forget(clientId: string): Promise<boolean> {
    const [forgotten, offline] = (await this.forgetScript.run([stateKeys.session(clientId), stateKeys.sessionsOffline, stateKeys.sessionsPerOwner], [encodeId(clientId)])) as [number, number];
    this.offline = offline;
    return forgotten === 1;
  }

  async holders(clientIds: readonly string[]): Promise<Map<string, SessionHolder>> {
    const found = new Map<string, SessionHolder>();
    if (clientIds.length === 0) return found;
    const pipeline = this.redis.pipeline();
    for (const clientId of clientIds) pipeline.hmget(stateKeys.session(clientId), 'o', 'c');
    const replies = (await pipeline.exec()) ?? [];
    clientIds.forEach((clientId, index) => {
      const [error, reply] = replies[index] ?? [new BridgeError('BRIDGE_ERR_REDIS', 'Redis gave no reply')];
      if (error) throw error;
      const [owner, connection] = reply as [string | null, string | null];
      if (owner !== null) found.set(clientId, { owner, connected: connection !== null && connection !== '' });
    });
    return found;
  }

  /** Connected: this instance's connections; offline: the persistent sessions offline over the whole fleet, as Redis last told it (each claim, release and heartbeat). */
  counts(): SessionCounts {
    return { connected: this.held.size, offline: this.offline };
  }

  /** Says this instance is alive (joining: for the first time, or again after it was condemned); false when the others condemned it. */
  async heartbeat(joining = false): Promise<boolean> {
    const answer = Number(
      await this.heartbeatScript.run(
        [stateKeys.instances, stateKeys.sessionsOffline, stateKeys.willHolders],
        [this.options.keyPrefix, this.options.instanceId, this.now(), joining ? '1' : '0'],
      ),
    );
    if (answer < 0) return false;
    this.offline = answer;
    return true;
  }

  /** Puts offline the sessions of instances silent since `silentSince`; resolves to how many. */
  async reapSilent(silentSince: number, maxBatches = 20): Promise<number> {
    let released = 0;
    for (let batch = 0; batch < maxBatches; batch++) {
      const answer = await this.reapScript.run([stateKeys.instances, stateKeys.sessionsOffline], [this.options.keyPrefix, silentSince]);
      if (answer === null) break;
      released += Number(answer);
    }
    return released;
  }

  /** Records again the releases that failed. */
  retryReleases(): void {
    for (const [clientId, connection] of this.unrecorded) {
      this.unrecorded.delete(clientId);
      this.record(clientId, connection);
    }
  }

  /** Forgets this instance's connections (it was condemned: they are being closed, and it joins again). */
  forgetConnections(): void {
    this.held.clear();
    this.unrecorded.clear();
  }

  /** Resolves once the releases under way are recorded (or have failed). */
  async settled(): Promise<void> {
    while (this.recording.size > 0) await Promise.all([...this.recording]);
  }

  /** A graceful stop: what this instance still holds goes offline, and it leaves the instances. */
  async leave(): Promise<void> {
    await this.settled();
    await this.leaveScript.run([stateKeys.instances, stateKeys.sessionsOffline], [this.options.keyPrefix, this.options.instanceId, this.now()]);
    this.held.clear();
  }

  private connection(claim: number): string {
    return `${this.options.instanceId}/${claim}`;
  }

  private record(clientId: string, connection: string): void {
    const recording: Promise<void> = this.releaseScript
      .run([stateKeys.session(clientId), stateKeys.sessionsOffline, stateKeys.instanceSessions(this.options.instanceId)], [encodeId(clientId), connection, this.now()])
      .then(
        (offline) => {
          this.offline = Number(offline);
        },
        (error: unknown) => {
          // Unless a newer connection claimed it meanwhile (its claim supersedes this).
          if (!this.held.has(clientId)) this.unrecorded.set(clientId, connection);
          this.options.onReleaseFailed?.(clientId, error);
        },
      )
      .finally(() => this.recording.delete(recording));
    this.recording.add(recording);
  }
}
