import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import AsyncRedisPersistence from 'aedes-persistence-redis/asyncPersistence.js';
import { BridgeError } from '../../errors.js';

/**
 * The one place that reaches into aedes-persistence-redis. Its package exports the callback
 * form of the persistence, which aedes 1.2 no longer takes; the promise form aedes needs
 * (`setup` an async function) is its file asyncPersistence.js, loaded here by path. The bridge
 * subclasses it and keeps only the subscriptions from it (see src/mqtt/redis/session-store.ts):
 * each client's subscriptions in a Redis hash, all of them in a trie in memory that answers
 * `subscriptionsByTopic` without a Redis round trip, kept in step between instances by the
 * `$SYS/sub/add` and `$SYS/sub/rm` messages it publishes through aedes, and loaded from Redis in
 * `setup`. `checkRedisPersistence` verifies at start that the installed version still does that.
 */

/** A subscription as the library keeps it (and aedes asks for it). */
export interface StoredSubscription {
  readonly topic: string;
  readonly qos: number;
  readonly clientId?: string;
}

/** The methods of the library's persistence the bridge keeps (and calls). */
export interface RedisSubscriptionStore {
  setup(broker: unknown): Promise<void>;
  addSubscriptions(client: { id: string }, subscriptions: Array<{ topic: string; qos: number }>): Promise<void>;
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
  subscriptionsByClient(client: { id: string }): Promise<Array<{ topic: string; qos: number }>>;
  subscriptionsByTopic(topic: string): Promise<StoredSubscription[]>;
  cleanSubscriptions(client: { id: string }): Promise<void>;
}

/** What the library's constructor is given: our own connection, so that its key prefix, database, TLS and Sentinel settings apply. */
export interface RedisPersistenceOptions {
  readonly conn: Redis;
}

export const RedisPersistenceBase = AsyncRedisPersistence as unknown as new (options: RedisPersistenceOptions) => RedisSubscriptionStore;

const fromLibrary = createRequire(createRequire(import.meta.url).resolve('aedes-persistence-redis'));

/** The installed aedes-persistence-redis' version, for error messages. */
export function redisPersistenceVersion(): string {
  try {
    return (fromLibrary('./package.json') as { version: string }).version;
  } catch {
    return '(unknown version)';
  }
}

const KEPT_METHODS = ['addSubscriptions', 'removeSubscriptions', 'subscriptionsByClient', 'subscriptionsByTopic', 'cleanSubscriptions'] as const;

/**
 * Checks that this aedes-persistence-redis has what the bridge relies on: the promise form with
 * an async `setup`, the subscription methods, and `subscriptionsByTopic` answered from memory
 * (every QoS 1/2 publish asks it: uplink with no subscriber must not wait for Redis). Throws
 * BRIDGE_ERR_DEPENDENCY naming the version otherwise. `base` is the class to check (a test gives a changed one).
 */
export async function checkRedisPersistence(base: new (options: RedisPersistenceOptions) => unknown = RedisPersistenceBase): Promise<void> {
  const missing: string[] = [];
  const prototype = (base as { prototype?: Record<string, unknown> }).prototype ?? {};
  if (typeof prototype.setup !== 'function' || (prototype.setup as () => unknown).constructor.name !== 'AsyncFunction') missing.push('an async setup()');
  for (const method of KEPT_METHODS) if (typeof prototype[method] !== 'function') missing.push(`${method}()`);
  if (missing.length === 0) {
    // A connection that records every command sent: asking for a topic's subscribers must send none.
    const sent: string[] = [];
    const recorder = new Proxy({}, { get: (_target, name) => (typeof name === 'string' ? (...args: unknown[]) => (sent.push(name), Promise.resolve(args.length ? null : [])) : undefined) });
    try {
      const probe = new base({ conn: recorder as unknown as Redis }) as RedisSubscriptionStore;
      const subscribers = await probe.subscriptionsByTopic('probe/topic');
      if (!Array.isArray(subscribers)) missing.push('subscriptionsByTopic() answering an array');
    } catch (error) {
      missing.push(`a persistence built on a given connection (${(error as Error).message})`);
    }
    if (sent.length > 0) missing.push(`subscriptionsByTopic() answered from memory (it sent ${sent.join(', ')})`);
  }
  if (missing.length > 0) {
    throw new BridgeError(
      'BRIDGE_ERR_DEPENDENCY',
      `aedes-persistence-redis ${redisPersistenceVersion()} lacks what the bridge relies on (${missing.join(', ')}); install the version package.json names`,
    );
  }
}
