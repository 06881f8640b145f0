import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { RedisPersistenceConfig } from '../../src/config/schema.js';
import { DEFAULT_INSTANCE_TIMEOUT_SECONDS } from '../../src/config/schema.js';
import { createRedisClient, type RedisClientChoices } from '../../src/redis/client.js';
import { AMQP_URL, uniqueName, waitFor } from './amqp.js';
import type { Transport } from './bridge.js';
import { freePort, runBridgeProcess, waitForAmqp, type BridgeProcess } from './bridge-process.js';

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

  readonly connect = (purpose: string, choices: RedisClientChoices = {}): Redis => {
    const redis = createRedisClient(this.settings, purpose, choices);
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

/** A bridge process of a cluster test: its instance id in the cluster, and where its devices connect. */
export interface ClusterBridge {
  readonly name: string;
  readonly process: BridgeProcess;
  readonly instanceId: string;
  url(transport: Transport): string;
  /** The /metrics text. */
  metrics(): Promise<string>;
  /** SIGTERM, and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Runs `mqtt-amqp-bridge run` on a configuration written to `directory` (tcp and ws listeners and
 * HTTP on free ports, the given persistence and rules) and waits until it serves devices and is
 * connected to RabbitMQ.
 */
export async function startClusterBridge(directory: string, name: string, config: Record<string, unknown> & { mqtt: Record<string, unknown> }): Promise<ClusterBridge> {
  const file = join(directory, `${name}.yaml`);
  const full = {
    ...config,
    mqtt: {
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0 },
        { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
      ],
      ...config.mqtt,
    },
    amqp: { url: AMQP_URL, ...(config.amqp as Record<string, unknown> | undefined) },
    http: { host: '127.0.0.1', port: 0 },
  };
  writeFileSync(file, JSON.stringify(full, null, 2));
  const process = runBridgeProcess(['--config', file]);
  await waitForAmqp(process);
  await waitFor(() => process.lines.some((line) => line.msg === 'bridge running'), `${name} to run`);
  const line = (message: string) => process.lines.find((candidate) => candidate.msg === message);
  const listening = (type: string) => String(process.lines.find((candidate) => candidate.listener === type)?.address);
  const instanceId = String(line('joined the bridge instances on Redis')?.clusterInstance);
  const http = String(process.lines.find((candidate) => typeof candidate.msg === 'string' && candidate.msg.startsWith('metrics and health on'))?.address);
  return {
    name,
    process,
    instanceId,
    url: (transport) => (transport === 'tcp' ? listening('tcp') : listening('ws')),
    metrics: async () => (await fetch(`${http}/metrics`)).text(),
    stop: async () => {
      if (process.child.exitCode !== null || process.child.signalCode !== null) return;
      process.child.kill('SIGTERM');
      await process.exit;
    },
  };
}

/** The sum of a counter's samples in a /metrics text (every label set). */
export function counterTotal(metrics: string, name: string): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** A redis-server of the test's own on a free port (nothing on disk), to stop and start again without disturbing the machine's. */
export class OwnRedisServer {
  private child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<OwnRedisServer> {
    const server = new OwnRedisServer(await freePort());
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Starts it (empty) and waits until it answers. */
  async restart(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await waitFor(async () => {
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          return false;
        }
      }, 'redis-server to answer');
    } finally {
      probe.disconnect();
    }
  }

  /** Kills it (SIGKILL) and waits for it to be gone. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
