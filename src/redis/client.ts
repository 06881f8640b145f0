import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisPersistenceConfig } from '../config/schema.js';
import { TlsFileError } from '../errors.js';

/** Delay before the first reconnect to Redis, doubled per attempt up to the maximum. */
export const REDIS_RECONNECT_INITIAL_DELAY_MS = 100;
export const REDIS_RECONNECT_MAX_DELAY_MS = 5_000;
/** A command Redis has not answered in this long fails (a Redis that hangs is treated as one that is down: nothing waits on it without bound). */
export const REDIS_COMMAND_TIMEOUT_MS = 5_000;

/**
 * ioredis options for `mqtt.persistence` (type redis): the URL's host, port, user, password,
 * database and TLS (`rediss://`), or the sentinels; the key prefix; reconnecting forever with a
 * capped backoff. Commands issued while the connection is down fail at once instead of queueing
 * (`enableOfflineQueue: false`), and one not answered within REDIS_COMMAND_TIMEOUT_MS fails: what
 * cannot be stored is refused, not held in memory unbounded.
 */
export function redisOptions(settings: RedisPersistenceConfig, connectionName: string): RedisOptions {
  const url = new URL(settings.url);
  const database = url.pathname.replace('/', '');
  const options: RedisOptions = {
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: database === '' ? 0 : Number(database),
    keyPrefix: settings.keyPrefix,
    connectionName,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    // A command whose connection dropped before its answer has failed for its caller (a downlink
    // delivery is requeued, a publish refused): sending it again after the reconnect would store
    // it a second time.
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(REDIS_RECONNECT_INITIAL_DELAY_MS * 2 ** Math.max(0, attempt - 1), REDIS_RECONNECT_MAX_DELAY_MS),
  };
  if (settings.sentinels) {
    options.sentinels = settings.sentinels.map(({ host, port }) => ({ host, port }));
    options.name = settings.sentinelName;
  } else {
    options.host = url.hostname.replace(/^\[|\]$/g, '');
    options.port = url.port ? Number(url.port) : 6379;
  }
  if (url.protocol === 'rediss:') options.tls = tlsOptions(settings.tls);
  return options;
}

/** What a connection may choose for itself beyond `redisOptions`. */
export type RedisClientChoices = Pick<RedisOptions, 'enableAutoPipelining'>;

/** A Redis connection for one purpose (its name shows in `CLIENT LIST`); not connected until `connect()`. */
export function createRedisClient(settings: RedisPersistenceConfig, purpose: string, choices: RedisClientChoices = {}): Redis {
  return new Redis({ ...redisOptions(settings, `mqtt-amqp-bridge:${purpose}`), ...choices });
}

/** The URL with its password hidden, for logs. */
export function redactRedisUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

function tlsOptions(files: RedisPersistenceConfig['tls']): NonNullable<RedisOptions['tls']> {
  const read = (what: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new TlsFileError(`the Redis ${what} ${path} cannot be read: ${(error as Error).message}`, { cause: error });
    }
  };
  const ca = read('CA file', files?.ca);
  const cert = read('client certificate', files?.cert);
  const key = read('client key', files?.key);
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}
