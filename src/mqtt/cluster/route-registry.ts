import type { Redis } from 'ioredis';
import type { LocalRoutes } from './local-routes.js';
import type { RouteNotice, RouteSnapshot } from './route-follower.js';

/**
 * The routing table in Redis, as EMQX keeps one: per instance a set of the filters its clients
 * hold, a heartbeat key that expires, and a version counted up with every change; a channel on
 * which every change is announced. Keys are given without the key prefix (the connection adds
 * it); channels are not keys, so they carry the prefix themselves.
 */
export interface ClusterNames {
  readonly instances: string;
  readonly versions: string;
  alive(instance: string): string;
  routes(instance: string): string;
  /** Route changes of every instance. */
  readonly routesChannel: string;
  /** `$SYS` messages, to every instance. */
  readonly sysChannel: string;
  /** The publishes for one instance. */
  inbox(instance: string): string;
}

export function clusterNames(keyPrefix: string): ClusterNames {
  return {
    instances: 'cluster:instances',
    versions: 'cluster:versions',
    alive: (instance) => `cluster:alive:${instance}`,
    routes: (instance) => `cluster:routes:${instance}`,
    routesChannel: `${keyPrefix}cluster:routes`,
    sysChannel: `${keyPrefix}cluster:sys`,
    inbox: (instance) => `${keyPrefix}cluster:to:${instance}`,
  };
}

/** Filters per SADD/SREM inside a script (Lua's unpack has a limit). */
const LUA_CHUNK = `
local function each_chunk(command, key, from, to)
  for i = from, to, 1000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 999, to)))
  end
end
local function list(from, to)
  if to < from then return '[]' end
  return cjson.encode({ unpack(ARGV, from, to) })
end`;

/** KEYS: alive, instances, routes, versions. ARGV: id, ttl ms, channel, version floor, stamp, filters... Returns the version. */
const REGISTER = `${LUA_CHUNK}
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
each_chunk('SADD', KEYS[3], 6, #ARGV)
local version = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
local floor = tonumber(ARGV[4])
if floor > version then version = floor end
version = version + 1
redis.call('HSET', KEYS[4], ARGV[1], version)
redis.call('PUBLISH', ARGV[3], '{"i":' .. cjson.encode(ARGV[1]) .. ',"v":' .. version .. ',"reset":true}')
return version`;

/** KEYS: alive, routes, versions. ARGV: id, channel, number added, added..., removed... Returns the version, or -1 when the instance had expired. */
const CHANGE = `${LUA_CHUNK}
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local added = tonumber(ARGV[3])
local last_added = 3 + added
each_chunk('SADD', KEYS[2], 4, last_added)
each_chunk('SREM', KEYS[2], last_added + 1, #ARGV)
local version = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('PUBLISH', ARGV[2], '{"i":' .. cjson.encode(ARGV[1]) .. ',"v":' .. version .. ',"a":' .. list(4, last_added) .. ',"d":' .. list(last_added + 1, #ARGV) .. '}')
return version`;

/** KEYS: alive, routes, instances, versions. ARGV: id, channel. Removes an instance whose heartbeat expired; 1 if it did. */
const FORGET = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local version = redis.call('HGET', KEYS[4], ARGV[1]) or '0'
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[2], '{"i":' .. cjson.encode(ARGV[1]) .. ',"v":' .. version .. ',"gone":true}')
return 1`;

/** KEYS: versions, routes. ARGV: id. The version (false when not registered) and the filters, read together. */
const READ = `
return { redis.call('HGET', KEYS[1], ARGV[1]), redis.call('SMEMBERS', KEYS[2]) }`;

interface ClusterCommands {
  clusterRegister(...args: Array<string | number>): Promise<number>;
  clusterChange(...args: Array<string | number>): Promise<number>;
  clusterForget(...args: string[]): Promise<number>;
  clusterRead(...args: string[]): Promise<[string | null, string[]]>;
}

/** Defines the scripts on a connection (ioredis sends each by its SHA, and the source when Redis lost it). */
export function defineClusterCommands(redis: Redis): void {
  redis.defineCommand('clusterRegister', { numberOfKeys: 4, lua: REGISTER });
  redis.defineCommand('clusterChange', { numberOfKeys: 3, lua: CHANGE });
  redis.defineCommand('clusterForget', { numberOfKeys: 4, lua: FORGET });
  redis.defineCommand('clusterRead', { numberOfKeys: 2, lua: READ });
}

export interface RouteRegistryOptions {
  /** The command connection, with `defineClusterCommands` applied. */
  readonly redis: Redis;
  readonly names: ClusterNames;
  readonly self: string;
  readonly local: LocalRoutes;
  /** The other instances remove this one's routes when its heartbeat is this old. */
  readonly timeoutMs: number;
  /** An announcement that failed (Redis away); the next full registration repairs it. */
  readonly onFailed: (error: unknown) => void;
  readonly now?: () => number;
}

/** This instance's side of the table: registering, announcing changes, the heartbeat, and removing dead instances. */
export class RouteRegistry {
  private readonly redis: Redis & ClusterCommands;
  /** The version of the last change stored; a new registration continues from it. */
  private version = 0;
  private mustRegister = true;
  private running: Promise<void> = Promise.resolve();
  private next: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly options: RouteRegistryOptions) {
    this.redis = options.redis as Redis & ClusterCommands;
  }

  /** Whether the table in Redis is known to hold this instance's filters (as last announced). */
  get registered(): boolean {
    return !this.mustRegister;
  }

  /**
   * Stores and announces what changed in the local filters (everything, when a full registration
   * is due). Changes asked for while one is being stored go together in the next. Resolves when
   * a write that began after this call is done; never rejects (a failure is reported, and the
   * next write is a full registration).
   */
  announce(): Promise<void> {
    if (this.next) return this.next;
    const next = this.running.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => {
      this.next = null;
      const write = this.write();
      this.running = write;
      return write;
    });
    this.next = next;
    return next;
  }

  /** Re-registers every filter (after Redis came back, or when this instance was taken for dead). */
  register(): Promise<void> {
    this.mustRegister = true;
    return this.announce();
  }

  /** Refreshes the heartbeat; re-registers if it had expired (the others have removed this instance's routes). */
  async heartbeat(): Promise<void> {
    const { names, self, timeoutMs } = this.options;
    const refreshed = await this.redis.set(names.alive(self), String(this.now()), 'PX', timeoutMs, 'XX');
    if (refreshed === null) await this.register();
  }

  /** The instances registered in Redis (this one included). */
  instances(): Promise<string[]> {
    return this.redis.smembers(this.options.names.instances);
  }

  /** Removes the instances whose heartbeat expired, and announces that they are gone; returns them. */
  async sweep(): Promise<string[]> {
    const { names, self } = this.options;
    const others = (await this.instances()).filter((instance) => instance !== self);
    if (others.length === 0) return [];
    const beats = await this.redis.mget(others.map((instance) => names.alive(instance)));
    const dead = others.filter((_, index) => beats[index] === null);
    const removed = await Promise.all(
      dead.map((instance) => this.redis.clusterForget(names.alive(instance), names.routes(instance), names.instances, names.versions, instance, names.routesChannel)),
    );
    return dead.filter((_, index) => removed[index] === 1);
  }

  /** Another instance's filters and version, read together; null when it is not registered. */
  async read(instance: string): Promise<RouteSnapshot | null> {
    const { names } = this.options;
    const [version, filters] = await this.redis.clusterRead(names.versions, names.routes(instance), instance);
    return version === null ? null : { version: Number(version), filters };
  }

  /** Removes this instance from the table at once (a graceful stop); the others need not wait for its heartbeat to expire. */
  async leave(): Promise<void> {
    this.closed = true;
    await this.running;
    const { names, self } = this.options;
    await this.redis.del(names.alive(self));
    await this.redis.clusterForget(names.alive(self), names.routes(self), names.instances, names.versions, self, names.routesChannel);
  }

  private async write(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.mustRegister) {
        await this.registerAll();
        return;
      }
      const { added, removed } = this.options.local.takeChanges();
      if (added.length === 0 && removed.length === 0) return;
      const { names, self } = this.options;
      const version = await this.redis.clusterChange(names.alive(self), names.routes(self), names.versions, self, names.routesChannel, added.length, ...added, ...removed);
      if (version === -1) await this.registerAll();
      else this.version = version;
    } catch (error) {
      this.mustRegister = true;
      this.options.onFailed(error);
    }
  }

  private async registerAll(): Promise<void> {
    this.mustRegister = true;
    const { names, self, timeoutMs, local } = this.options;
    const filters = local.takeAll();
    this.version = await this.redis.clusterRegister(
      names.alive(self),
      names.instances,
      names.routes(self),
      names.versions,
      self,
      timeoutMs,
      names.routesChannel,
      this.version,
      String(this.now()),
      ...filters,
    );
    this.mustRegister = false;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}

/** Reads a notice from the routes channel; null for anything else. */
export function parseNotice(text: string): RouteNotice | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { i, v, a, d, reset, gone } = value as Record<string, unknown>;
  if (typeof i !== 'string' || typeof v !== 'number') return null;
  // Lua's cjson writes an empty list as {}.
  const strings = (list: unknown) => (Array.isArray(list) ? list.filter((item): item is string => typeof item === 'string') : []);
  return { instance: i, version: v, added: strings(a), removed: strings(d), reset: reset === true, gone: gone === true };
}
