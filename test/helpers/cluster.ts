import { Redis } from 'ioredis';
import type { RedisPersistenceConfig } from '../../src/config/schema.js';
import { DEFAULT_INSTANCE_TIMEOUT_SECONDS } from '../../src/config/schema.js';
import { createRedisClient } from '../../src/redis/client.js';
import { uniqueName } from './amqp.js';

/** The machine's Redis (CI starts one when 6379 is closed). */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** `mqtt.persistence` for a test: the machine's Redis under a key prefix of its own. */
export function redisSettings(keyPrefix = `${uniqueName('test')}:`, url = REDIS_URL): RedisPersistenceConfig {
  return { type: 'redis', url, keyPrefix, instanceTimeoutSeconds: DEFAULT_INSTANCE_TIMEOUT_SECONDS };
}

/** Deletes every key under `keyPrefix` (SCAN MATCH, then DEL). */
export async function deleteKeys(keyPrefix: string, url = REDIS_URL): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Keys under `keyPrefix`, without it. */
export async function keysUnder(keyPrefix: string, url = REDIS_URL): Promise<string[]> {
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...found.map((key) => key.slice(keyPrefix.length)));
    } while (cursor !== '0');
    return keys.sort();
  } finally {
    redis.disconnect();
  }
}

/** Redis connections made as the bridge makes them, that record every command they send and can be cut. */
export class RecordedConnections {
  readonly commands: string[] = [];
  readonly made: Redis[] = [];

  constructor(private readonly settings: RedisPersistenceConfig) {}

  readonly connect = (purpose: string): Redis => {
    const redis = createRedisClient(this.settings, purpose);
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], stream?: Parameters<Redis['sendCommand']>[1]) => {
      this.commands.push(command.name.toLowerCase());
      return send(command, stream);
    });
    this.made.push(redis);
    return redis;
  };

  /** Commands recorded since `from`, except the heartbeat's. */
  since(from: number): string[] {
    return this.commands.slice(from).filter((name) => name !== 'set' && name !== 'smembers' && name !== 'mget');
  }

  /** Ends every connection at once, as a killed process would (nothing is removed from Redis). */
  cut(): void {
    for (const redis of this.made) redis.disconnect();
  }
}
