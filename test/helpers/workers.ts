import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from './amqp.js';
import { runBridgeProcess, type BridgeProcess } from './bridge-process.js';

/** The machine's Redis, which tests share: each uses a key prefix of its own. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** `mqtt-amqp-bridge run --workers N` as a child process, and what its log says. */
export interface WorkersProcess extends BridgeProcess {
  readonly file: string;
  readonly primaryPid: number;
  /** The primary's HTTP endpoint (`/metrics`, `/healthz`, `/readyz`). */
  readonly http: string;
  /** Where the workers listen, by listener type (`mqtt://127.0.0.1:PORT`, `ws://127.0.0.1:PORT/mqtt`, ...). */
  readonly urls: Readonly<Record<string, string>>;
  /** The pid of the worker running in each slot now (from its latest `worker running` line). */
  workerPids(): Map<number, number>;
  /** The worker slot that logged `client connected` for this client id (the latest such line). */
  slotOf(clientId: string): number | undefined;
  /** The pid that logged `client connected` for this client id (the latest such line). */
  pidOf(clientId: string): number | undefined;
  /** Primary log lines with this message. */
  primaryLines(msg: string | RegExp): Array<Record<string, unknown>>;
  /** `/metrics` of the primary: the value of one sample (labels as given, others summed). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

const matches = (line: Record<string, unknown>, msg: string | RegExp) => typeof line.msg === 'string' && (typeof msg === 'string' ? line.msg === msg : msg.test(line.msg));

/** Writes `config` as the configuration file (JSON is YAML) and runs `run --config FILE --workers N` until it runs. */
export async function startWorkers(config: unknown, workers: number, { args = [], timeoutMs = 30_000 }: { args?: string[]; timeoutMs?: number } = {}): Promise<WorkersProcess> {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-workers-')), 'bridge.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const process = runBridgeProcess(['--config', file, '--workers', String(workers), ...args]);
  const { lines, child } = process;
  const running = () => lines.find((line) => line.role === 'primary' && matches(line, /^bridge running with \d+ workers$/));
  await waitFor(
    () => {
      if (running()) return true;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`run --workers ended (${child.exitCode ?? child.signalCode}) before it ran: ${JSON.stringify(lines.slice(-8))}`);
      return false;
    },
    `run --workers ${workers} to run`,
    timeoutMs,
  );
  // Every worker connected to RabbitMQ (what a test consumer binds to is declared by then).
  await waitFor(() => new Set(lines.filter((line) => line.role === 'worker' && line.msg === 'AMQP connected; exchanges declared').map((line) => line.worker)).size === workers, 'every worker to connect to RabbitMQ', timeoutMs);
  const primaryPid = Number(running()!.pid);
  const http = String(lines.find((line) => line.role === 'primary' && typeof line.address === 'string')?.address);
  const urls: Record<string, string> = {};
  for (const line of lines) if (line.role === 'worker' && typeof line.listener === 'string') urls[line.listener] = String(line.address).replace('0.0.0.0', '127.0.0.1');
  const latest = (clientId: string) => lines.findLast((line) => line.role === 'worker' && line.msg === 'client connected' && line.clientId === clientId);
  return {
    ...process,
    file,
    primaryPid,
    http,
    urls,
    workerPids: () => new Map(lines.filter((line) => line.role === 'worker' && line.msg === 'worker running').map((line) => [Number(line.worker), Number(line.pid)])),
    slotOf: (clientId) => (latest(clientId) ? Number(latest(clientId)!.worker) : undefined),
    pidOf: (clientId) => (latest(clientId) ? Number(latest(clientId)!.pid) : undefined),
    primaryLines: (msg) => lines.filter((line) => line.role === 'primary' && matches(line, msg)),
    metric: async (name, labels = {}) => {
      const text = await (await fetch(`${http}/metrics`)).text();
      let sum = 0;
      for (const sample of text.split('\n')) {
        const match = /^([a-z_:]+)(?:\{([^}]*)\})? (\S+)$/.exec(sample);
        if (!match || match[1] !== name) continue;
        const found = new Map([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((pair) => [pair[1], pair[2]]));
        if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) sum += Number(match[3]);
      }
      return sum;
    },
  };
}

/** Whether a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Ends what a test started, whatever state it is in: the primary, then any worker left. */
export async function killWorkers(workers: WorkersProcess | undefined): Promise<void> {
  if (!workers) return;
  const pids = [...workers.workerPids().values()];
  if (workers.child.exitCode === null && workers.child.signalCode === null) workers.child.kill('SIGKILL');
  await workers.exit;
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** Deletes every key under `prefix` on the machine's Redis (SCAN, then DEL). */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
