import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisPersistenceConfig } from '../../config/schema.js';
import { BridgeError } from '../../errors.js';
import { createRedisClient, redactRedisUrl } from '../../redis/client.js';
import { RateLimitedWarning } from '../../observability/rate-limited-warning.js';
import { RetainedQuota } from '../retained-quota.js';
import type { RetainedLimits } from '../retained-ledger.js';
import type { SessionStoreOptions } from '../session-store.js';
import type { MqttStateBase, StateHealth } from '../state.js';
import { checkRedisPersistence } from './persistence-redis-internals.js';
import { RedisRetainedLedger } from './retained-ledger.js';
import { createRedisSessionStore, type RedisSessionStore } from './session-store.js';

/** How long the start waits for Redis before it fails. */
export const REDIS_START_TIMEOUT_MS = 30_000;
/** How often an instance says it is alive, tries again what failed, and looks for silent instances. */
export const REDIS_HEARTBEAT_INTERVAL_MS = 5_000;
/** A heartbeat slower than this makes the state not ready ("Redis is slow"). */
export const REDIS_SLOW_HEARTBEAT_MS = 1_000;

export interface RedisStateOptions {
  readonly settings: RedisPersistenceConfig;
  readonly limits: RetainedLimits;
  readonly session: Omit<SessionStoreOptions, 'retained'>;
  readonly logger: Logger;
  /**
   * The other instances found this one silent (it lost Redis for longer than
   * `instanceTimeoutSeconds`) and took over its sessions and wills: its connections must
   * be closed without their wills (another instance publishes those), and it starts over.
   */
  readonly onCondemned: () => void;
  /** Timings (tests shorten them). */
  readonly heartbeatIntervalMs?: number;
  readonly silentAfterMs?: number;
  readonly startTimeoutMs?: number;
}

export interface RedisMqttState extends MqttStateBase {
  readonly kind: 'redis';
  readonly store: RedisSessionStore;
  readonly retainedLedger: RedisRetainedLedger;
  readonly redis: Redis;
  /** One heartbeat now (tests; it also runs on a timer). */
  heartbeat(): Promise<void>;
}

/**
 * The MQTT state in Redis: one connection (with the key prefix, database, TLS and Sentinel
 * settings of `mqtt.persistence`), the session store and retained ledger on it, and a heartbeat
 * that keeps this instance known as alive, retries what failed, takes over the sessions of
 * instances that went silent, and tells `health()` how Redis answers.
 */
export async function createRedisState(options: RedisStateOptions): Promise<RedisMqttState> {
  const { settings, logger } = options;
  const url = redactRedisUrl(settings.url);
  // The same timeout as the routes between instances: a dead instance's routes, sessions and wills are taken over together.
  const silentAfterMs = options.silentAfterMs ?? settings.instanceTimeoutSeconds * 1000;
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? Math.min(REDIS_HEARTBEAT_INTERVAL_MS, Math.floor(silentAfterMs / 3));
  await checkRedisPersistence();
  const redis = createRedisClient(settings, 'state');
  let lastError: Error | null = null;
  const connectionWarning = new RateLimitedWarning({ logger, message: 'Redis connection error' });
  // ioredis reports each failed (re)connection as an 'error' event: unheard, it would end the process.
  redis.on('error', (error: Error) => {
    lastError = error;
    connectionWarning.warn(null, { url, err: error.message });
  });
  redis.on('ready', () => logger.info({ url }, 'Redis connected'));
  await connectWithin(redis, options.startTimeoutMs ?? REDIS_START_TIMEOUT_MS, url, () => lastError);

  const instanceId = randomUUID();
  const stateWarning = new RateLimitedWarning({ logger, message: 'Redis could not store or read the MQTT state; what needed it was refused or is retried' });
  const onError = (what: string, error: unknown) => stateWarning.warn(null, { what, err: (error as Error)?.message ?? String(error) });
  const retainedLedger = new RedisRetainedLedger(redis, options.limits);
  const retained = new RetainedQuota(retainedLedger, { storeBeforeAck: true });
  const store = createRedisSessionStore(redis, retainedLedger, {
    ...options.session,
    retained,
    instanceId,
    keyPrefix: settings.keyPrefix,
    silentAfterMs,
    onError,
  });

  let beat: { ok: true; at: number; tookMs: number } | { ok: false; error: Error } = { ok: true, at: Date.now(), tookMs: 0 };
  let condemnedAt: number | null = null;
  let closed = false;
  let running: Promise<void> | null = null;

  const heartbeatOnce = async () => {
    const started = Date.now();
    try {
      if (!(await store.registry.heartbeat(condemnedAt !== null))) {
        condemnedAt = Date.now();
        logger.error({ instanceId, silentAfterMs }, 'the other instances found this one silent and took over its sessions and wills: closing its connections and starting over');
        store.registry.forgetConnections();
        options.onCondemned();
        await store.wills.dropOwn();
        await store.registry.heartbeat(true);
      }
      condemnedAt = null;
      await store.registry.reapSilent(Date.now() - silentAfterMs);
      store.registry.retryReleases();
      store.retryPendingDeletes();
      await retainedLedger.refresh();
      beat = { ok: true, at: Date.now(), tookMs: Date.now() - started };
    } catch (error) {
      beat = { ok: false, error: error as Error };
    }
  };
  const heartbeat = () => (running ??= heartbeatOnce().finally(() => (running = null)));

  try {
    await store.registry.heartbeat(true);
    await retainedLedger.refresh();
  } catch (error) {
    redis.disconnect();
    throw new BridgeError('BRIDGE_ERR_REDIS', `Redis at ${url} did not answer: ${(error as Error).message}`, { cause: error });
  }
  const timer = setInterval(() => void heartbeat(), heartbeatIntervalMs);
  timer.unref();

  const health = (): StateHealth => {
    if (closed) return { ready: false, reason: 'the MQTT state is closed' };
    if (redis.status !== 'ready') return { ready: false, reason: `Redis at ${url} is unreachable${lastError ? `: ${lastError.message}` : ''}` };
    if (condemnedAt !== null) return { ready: false, reason: 'this instance is starting over: the others found it silent and took over its sessions' };
    if (!beat.ok) return { ready: false, reason: `Redis at ${url} failed a heartbeat: ${beat.error.message}` };
    if (beat.tookMs > REDIS_SLOW_HEARTBEAT_MS) return { ready: false, reason: `Redis at ${url} is slow: a heartbeat took ${beat.tookMs} ms` };
    if (Date.now() - beat.at > 3 * heartbeatIntervalMs) return { ready: false, reason: `Redis at ${url} has not answered a heartbeat for ${Date.now() - beat.at} ms` };
    return { ready: true };
  };

  return {
    kind: 'redis',
    store,
    retainedLedger,
    retained,
    brokerId: instanceId,
    redis,
    health,
    heartbeat,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await running;
      try {
        // A graceful stop publishes no will [MQTT-3.1.2-8]; what this instance held goes offline now.
        await store.wills.dropOwn();
        await store.registry.leave();
      } catch (error) {
        logger.warn({ url, err: (error as Error).message }, 'Redis did not record the stop: the other instances will take over when this one has been silent long enough');
      }
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/** Connects, or fails with BRIDGE_ERR_REDIS after `timeoutMs` (ioredis keeps retrying meanwhile). */
async function connectWithin(redis: Redis, timeoutMs: number, url: string, lastError: () => Error | null): Promise<void> {
  redis.connect().catch(() => {}); // the first attempt's failure: ioredis goes on retrying, and 'ready' tells
  if (redis.status === 'ready') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      redis.once('ready', resolve);
      timer = setTimeout(() => {
        redis.removeListener('ready', resolve);
        reject(new BridgeError('BRIDGE_ERR_REDIS', `Redis at ${url} could not be reached within ${timeoutMs} ms${lastError() ? `: ${lastError()!.message}` : ''}`));
      }, timeoutMs);
    });
  } catch (error) {
    redis.disconnect();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
