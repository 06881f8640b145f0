import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { DEFAULT_INSTANCE_TIMEOUT_SECONDS, type RedisPersistenceConfig } from '../../src/config/schema.js';
import { createRedisClient } from '../../src/redis/client.js';
import { uniqueName, waitFor } from './amqp.js';
import { freePort } from './bridge-process.js';

/** The machine's Redis (nothing on disk); tests use a key prefix of their own on it. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** `mqtt.persistence` for Redis at `url`, under a key prefix of its own. */
export function redisPersistence(prefix = `${uniqueName('test')}:`, url = REDIS_URL): RedisPersistenceConfig {
  return { type: 'redis', url, keyPrefix: prefix, instanceTimeoutSeconds: DEFAULT_INSTANCE_TIMEOUT_SECONDS };
}

/** A connected client under the settings' key prefix (the bridge's own connection factory). */
export async function connectRedis(settings: RedisPersistenceConfig, purpose = 'test'): Promise<Redis> {
  const redis = createRedisClient(settings, purpose);
  redis.on('error', () => {}); // tests that stop Redis read the failures from the commands
  await redis.connect();
  return redis;
}

/** The keys under a prefix (with the prefix). */
export async function keysUnder(prefix: string, url = REDIS_URL): Promise<string[]> {
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  try {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found;
  } finally {
    redis.disconnect();
  }
}

/** Deletes every key under a prefix (what a test or a test bridge wrote). */
export async function deleteKeys(prefix: string, url = REDIS_URL): Promise<number> {
  const keys = await keysUnder(prefix, url);
  if (keys.length === 0) return 0;
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  try {
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
    return keys.length;
  } finally {
    redis.disconnect();
  }
}

/** A redis-server of the test's own on a free port, which it may stop, kill and restart without disturbing the machine's. */
export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  /** Starts it again on the same port (with the same data directory: an AOF is read back). */
  start(): Promise<void>;
  /** Stops it: `SIGKILL` by default (a crash), `SIGTERM` to shut down (it then writes its AOF). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Pauses (SIGSTOP) or resumes (SIGCONT) it: a Redis that hangs. */
  pause(): void;
  resume(): void;
  /** Stops it and removes its data directory. */
  remove(): Promise<void>;
}

/**
 * Starts `redis-server` on a free port. `appendonly`: with an AOF written on every write
 * (`appendfsync always`), so that a restart keeps what it acknowledged; without, nothing is on disk.
 */
export async function startOwnRedis({ appendonly = false }: { appendonly?: boolean } = {}): Promise<OwnRedis> {
  const port = await freePort();
  const directory = mkdtempSync(join(tmpdir(), 'bridge-redis-'));
  const url = `redis://127.0.0.1:${port}/0`;
  let child: ChildProcess | null = null;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', directory, '--daemonize', 'no'];
  args.push(...(appendonly ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
  const start = async () => {
    const started = spawn('redis-server', args, { stdio: 'ignore' });
    child = started;
    await waitFor(async () => {
      if (started.exitCode !== null) throw new Error(`redis-server exited (${started.exitCode})`);
      const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      probe.on('error', () => {});
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    }, `redis-server on port ${port}`);
  };
  const stop = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    if (signal !== 'SIGCONT') running.kill('SIGCONT');
    running.kill(signal);
    await exited;
  };
  await start();
  return {
    port,
    url,
    start,
    stop,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async remove() {
      await stop();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
