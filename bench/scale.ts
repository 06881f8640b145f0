/**
 * The figures the capacity model (docs/scaling.md) uses: `node --import tsx bench/scale.ts [--quick] [--part downlink,workers,cpu]`.
 *
 * Starts redis-servers of its own (nothing on disk, and one with `appendfsync always` for the
 * downlink part), the bridge as its own process per run, and the load from the separate load
 * process (bench/load-worker.ts); the variants compared take turns, run after run, and each
 * figure is the median of 3 runs (1 with --quick):
 * - `downlink`: a downlink QoS 1 rule to 1,000 persistent subscribers (clean session 0, QoS 1),
 *   `memory` against `redis` (and `redis` with `appendfsync always`): msgs/s delivered, lost,
 *   duplicated, CPU microseconds per message of the bridge and of Redis, Redis commands per
 *   message, and with the AOF the bytes it grew by per message;
 * - `downlink-clean`: the same to 1,000 clean-session subscribers (QoS 1), `memory` against `redis`;
 * - `workers`: uplink QoS 1 with no MQTT subscriber, `run --workers 2` against one process, both
 *   on `redis`: msgs/s, the bridge's CPU per message (all its processes), how busy the machine was;
 * - `cpu`: uplink QoS 0, 1 and 2 with no MQTT subscriber, `memory` against `redis`: the bridge's
 *   and RabbitMQ's CPU microseconds per message;
 * - `idle`: 10,000 idle connections (clean session, PINGREQ every 10 s each), `memory` against
 *   `redis`, one run each: KiB of bridge RSS per connection, connections/s, CPU of keep-alive,
 *   Redis' CPU per connection (its CONNECT and its close);
 * - `memory`: Redis' `used_memory` per persistent session (one subscription), per queued QoS 1
 *   message, per retained message and per connected clean session (64-byte payloads, 1,000
 *   sessions, 100,000 queued, 1,000 retained, 1,000 connected);
 * - `rabbit`: what one RabbitMQ node confirms, without the bridge: 10 amqplib publishers (500 in
 *   flight each, 64 B) through amq.topic to a durable classic queue and to a quorum queue (each
 *   with a consumer): msgs/s and RabbitMQ's CPU per message.
 * Prints one JSON line per run and per figure. Speed is never asserted.
 */
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { startBridge } from './lib/bridge.js';
import type { BenchContext, ScenarioResult } from './lib/context.js';
import { LoadGenerator } from './lib/load.js';
import { DeliveryCount } from './lib/delivery-count.js';
import { cpuSeconds, machineTicks, rabbitPid } from './lib/proc.js';
import { median, round } from './lib/stats.js';
import { downlink } from './scenarios/downlink.js';
import { connections } from './scenarios/connections.js';
import { uplink } from './scenarios/uplink.js';
import { AMQP_URL, uniqueName, waitFor } from '../test/helpers/amqp.js';
import { startOwnRedis, type OwnRedis } from '../test/helpers/redis.js';
import { benchClockMs } from './lib/clock.js';

const quick = process.argv.includes('--quick');
const REPEAT = quick ? 1 : 3;
const partArgument = process.argv.indexOf('--part');
const parts = partArgument === -1 ? ['downlink', 'downlink-clean', 'workers', 'cpu', 'idle', 'memory', 'rabbit'] : process.argv[partArgument + 1]!.split(',');

interface Variant {
  name: string;
  /** Lines under `mqtt:` for this variant, for run number `run`. */
  mqtt(run: number): string[];
  workers?: number;
  /** The redis-server it uses, whose CPU is measured. */
  redis?: OwnRedis;
}

interface Measured {
  result: ScenarioResult;
  redisUsPerMsg: number | null;
  /** Calls per message by command, from `INFO commandstats` (commands run by scripts included). */
  redisCommandsPerMsg: Record<string, number> | null;
  /** Bytes the append-only file grew by per message (null without an AOF). */
  aofBytesPerMsg: number | null;
  machineBusyPercent: number;
}

function print(figure: Record<string, unknown>): void {
  console.log(JSON.stringify(figure));
}

async function commandCalls(server: OwnRedis, reset: boolean): Promise<Record<string, number>> {
  const redis = new Redis(server.url);
  try {
    if (reset) await redis.config('RESETSTAT');
    const calls: Record<string, number> = {};
    for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (!/^(config|info)/.test(match[1]!)) calls[match[1]!] = Number(match[2]);
    return calls;
  } finally {
    redis.disconnect();
  }
}

/** Calls per message by command, leaving out those under 0.01 a message (the connections' own claims and releases, heartbeats). */
function perMessage(calls: Record<string, number>, messages: number): Record<string, number> {
  const figures: Record<string, number> = {};
  for (const [name, count] of Object.entries(calls)) {
    const each = round(count / Math.max(1, messages), 2);
    if (each >= 0.01) figures[name] = each;
  }
  return figures;
}

async function aofSize(server: OwnRedis): Promise<number | null> {
  const redis = new Redis(server.url);
  try {
    const size = /aof_current_size:(\d+)/.exec(await redis.info('persistence'));
    return size ? Number(size[1]) : null;
  } finally {
    redis.disconnect();
  }
}

async function redisPid(server: OwnRedis): Promise<number> {
  const redis = new Redis(server.url);
  try {
    return Number(/process_id:(\d+)/.exec(await redis.info('server'))![1]);
  } finally {
    redis.disconnect();
  }
}

function redisVariant(name: string, server: OwnRedis, workers = 1): Variant {
  // A key prefix per run: no run finds another's sessions.
  return { name, redis: server, workers, mqtt: (run) => ['  maxOfflineMessages: 100000', `  persistence: { type: redis, url: "${server.url}", keyPrefix: "bench${run}${name.replace(/\W/g, '')}:" }`] };
}

const memoryVariant: Variant = { name: 'memory', mqtt: () => ['  maxOfflineMessages: 100000', '  persistence: { type: memory }'] };

/** One run of `scenario` on a bridge of its own started for `variant`, with Redis' CPU and how busy the machine was. */
async function measure(load: LoadGenerator, variant: Variant, run: number, scenario: (context: BenchContext) => Promise<ScenarioResult>): Promise<Measured> {
  const tag = `${variant.name.replace(/\W/g, '')}${run}${Date.now().toString(36)}`;
  const bridge = await startBridge(`bench-scale-${tag}`, [], variant.mqtt(run), { workers: variant.workers ?? 1 });
  try {
    const pid = variant.redis ? await redisPid(variant.redis) : null;
    const redisBefore = pid ? cpuSeconds(pid) : 0;
    if (variant.redis) await commandCalls(variant.redis, true);
    const aofBefore = variant.redis ? await aofSize(variant.redis) : null;
    const machineBefore = machineTicks();
    const result = await scenario({ target: bridge, targetName: variant.name, load, quick, repeats: 1, tag });
    const machineAfter = machineTicks();
    const delivered = (result.messages as number) - (result.lost as number);
    const calls = variant.redis ? await commandCalls(variant.redis, false) : null;
    const aofAfter = variant.redis ? await aofSize(variant.redis) : null;
    const measured: Measured = {
      result,
      redisUsPerMsg: pid ? round(((cpuSeconds(pid) - redisBefore) * 1e6) / Math.max(1, delivered)) : null,
      redisCommandsPerMsg: calls ? perMessage(calls, delivered) : null,
      aofBytesPerMsg: aofBefore !== null && aofAfter !== null ? Math.round((aofAfter - aofBefore) / Math.max(1, delivered)) : null,
      machineBusyPercent: round((100 * (machineAfter.busy - machineBefore.busy)) / (machineAfter.total - machineBefore.total)),
    };
    print({ run, variant: variant.name, ...result, redisCpuUsPerMsg: measured.redisUsPerMsg, redisCommandsPerMsg: measured.redisCommandsPerMsg, aofBytesPerMsg: measured.aofBytesPerMsg, machineBusyPercent: measured.machineBusyPercent });
    return measured;
  } finally {
    await bridge.stop();
  }
}

/** Runs `scenario` REPEAT times on each variant, the variants taking turns, and prints the medians. */
async function compare(load: LoadGenerator, figure: string, variants: Variant[], scenario: (context: BenchContext) => Promise<ScenarioResult>): Promise<void> {
  const runs = new Map<string, Measured[]>(variants.map((variant) => [variant.name, []]));
  for (let run = 0; run < REPEAT; run++) for (const variant of variants) runs.get(variant.name)!.push(await measure(load, variant, run, scenario));
  const memoryRate = runs.has('memory') ? median(runs.get('memory')!.map((m) => m.result.msgsPerSecond as number)) : null;
  for (const [name, measured] of runs) {
    const of = (key: string) => median(measured.map((m) => m.result[key] as number));
    const rate = of('msgsPerSecond');
    print({
      figure,
      variant: name,
      runs: measured.length,
      msgsPerSecond: rate,
      allRuns: measured.map((m) => m.result.msgsPerSecond),
      ofMemory: memoryRate ? round(rate / memoryRate, 2) : null,
      bridgeCpuUsPerMsg: of('bridgeCpuUsPerMsg'),
      rabbitCpuUsPerMsg: measured[0]!.result.rabbitCpuUsPerMsg === undefined ? null : of('rabbitCpuUsPerMsg'),
      redisCpuUsPerMsg: measured[0]!.redisUsPerMsg === null ? null : median(measured.map((m) => m.redisUsPerMsg!)),
      redisCommandsPerMsg: measured[measured.length - 1]!.redisCommandsPerMsg,
      aofBytesPerMsg: measured[0]!.aofBytesPerMsg === null ? null : median(measured.map((m) => m.aofBytesPerMsg!)),
      machineBusyPercent: median(measured.map((m) => m.machineBusyPercent)),
      lost: Math.max(...measured.map((m) => m.result.lost as number)),
      duplicated: Math.max(...measured.map((m) => m.result.duplicated as number)),
      rabbitResourceAlarms: measured.reduce((sum, m) => sum + ((m.result.rabbitResourceAlarms as number | undefined) ?? 0), 0),
    });
  }
}

/** One run of confirmed publishes to a queue of `type` bound to amq.topic, consumed (no ack) as they come. */
async function confirmedTo(load: LoadGenerator, type: 'classic' | 'quorum'): Promise<{ rate: number; rabbitUs: number; lost: number; duplicated: number }> {
  const total = quick ? 20_000 : 100_000;
  const word = uniqueName(`q${type}`).replace(/\W/g, '');
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createChannel();
  const queue = `bench.${word}`;
  await channel.assertQueue(queue, { durable: true, arguments: type === 'quorum' ? { 'x-queue-type': 'quorum' } : {} });
  try {
    await channel.bindQueue(queue, 'amq.topic', `${word}.#`);
    const count = new DeliveryCount();
    let lastAt = 0;
    await channel.prefetch(1_000);
    await channel.consume(queue, (message) => {
      if (!message) return;
      count.record(message.content);
      lastAt = benchClockMs();
      channel.ack(message);
    });
    const rabbit = rabbitPid();
    const rabbitBefore = rabbit ? cpuSeconds(rabbit) : 0;
    const published = await load.run({ kind: 'amqp-publish', amqpUrl: AMQP_URL, publishers: 10, perPublisher: total / 10, confirm: true, exchange: 'amq.topic', routingPrefix: word, payloadBytes: 64, window: 500 }, 'published');
    const deadline = Date.now() + 60_000;
    while (count.distinct < published.sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const result = {
      rate: Math.round(count.distinct / ((lastAt - published.startedAt) / 1000)),
      rabbitUs: rabbit ? round(((cpuSeconds(rabbit) - rabbitBefore) * 1e6) / Math.max(1, count.distinct)) : 0,
      lost: published.sent - count.distinct,
      duplicated: count.duplicated,
    };
    return result;
  } finally {
    await channel.deleteQueue(queue);
    await connection.close();
  }
}

async function rabbitConfirms(load: LoadGenerator): Promise<void> {
  for (const type of ['classic', 'quorum'] as const) await confirmedTo(load, type); // warm-up, unmeasured
  const runs = { classic: [] as Array<Awaited<ReturnType<typeof confirmedTo>>>, quorum: [] as Array<Awaited<ReturnType<typeof confirmedTo>>> };
  for (let run = 0; run < REPEAT; run++) {
    for (const type of ['classic', 'quorum'] as const) {
      const result = await confirmedTo(load, type);
      print({ run, variant: `${type} queue`, ...result });
      runs[type].push(result);
    }
  }
  for (const [type, measured] of Object.entries(runs)) {
    print({
      figure: 'RabbitMQ alone: confirmed publishes to a consumed durable queue (10 publishers, 500 in flight, 64 B)',
      variant: `${type} queue`,
      msgsPerSecond: median(measured.map((m) => m.rate)),
      allRuns: measured.map((m) => m.rate),
      rabbitCpuUsPerMsg: median(measured.map((m) => m.rabbitUs)),
      lost: Math.max(...measured.map((m) => m.lost)),
      duplicated: Math.max(...measured.map((m) => m.duplicated)),
    });
  }
}

/** Redis' memory per persistent session, per queued message and per retained message, from `INFO memory`. */
async function redisMemory(server: OwnRedis): Promise<void> {
  const SESSIONS = quick ? 100 : 1_000;
  const QUEUED_EACH = 100;
  const keyPrefix = 'benchmemory:';
  const redis = new Redis(server.url);
  const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  const bridge = await startBridge(`bench-scale-memory${Date.now().toString(36)}`, [], ['  maxOfflineMessages: 100000', `  persistence: { type: redis, url: "${server.url}", keyPrefix: "${keyPrefix}" }`]);
  try {
    const payload = Buffer.alloc(64, 0x61);
    const before = await used();
    for (let i = 0; i < SESSIONS; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, SESSIONS - i) }, async (_, j) => {
          const device = await mqtt.connectAsync(bridge.url, { protocolVersion: 4, reconnectPeriod: 0, clean: false, clientId: `memory-${i + j}` });
          await device.subscribeAsync(`${bridge.prefix}/down1/m${i + j}`, { qos: 1 });
          await device.endAsync();
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // the releases of the client ids
    const sessions = await used();
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    for (let n = 0; n < QUEUED_EACH; n++) {
      for (let i = 0; i < SESSIONS; i++) channel.publish(bridge.commands, `down1.m${i}`, payload);
      await channel.waitForConfirms();
    }
    await connection.close();
    const queuedLength = async () => {
      const pipeline = redis.pipeline();
      for (let i = 0; i < SESSIONS; i++) pipeline.llen(`${keyPrefix}queue:memory-${i}`);
      return ((await pipeline.exec()) ?? []).reduce((sum, [, length]) => sum + Number(length), 0);
    };
    let queued = 0;
    await waitFor(async () => (queued = await queuedLength()) >= SESSIONS * QUEUED_EACH, () => `${SESSIONS * QUEUED_EACH} queued (have ${queued})`, 120_000);
    const withQueues = await used();
    const publisher = await mqtt.connectAsync(bridge.url, { protocolVersion: 4, reconnectPeriod: 0 });
    for (let i = 0; i < SESSIONS; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, SESSIONS - i) }, (_, j) => publisher.publishAsync(`${bridge.prefix}/retained/r${i + j}`, payload, { qos: 1, retain: true })));
    }
    await publisher.endAsync();
    const withRetained = await used();
    const connected = await Promise.all(Array.from({ length: SESSIONS }, (_, i) => mqtt.connectAsync(bridge.url, { protocolVersion: 4, reconnectPeriod: 0, clean: true, clientId: `memory-clean-${i}` })));
    const withConnected = await used();
    await Promise.all(connected.map((device) => device.endAsync()));
    print({
      figure: 'Redis memory (used_memory), 64-byte payloads',
      sessions: SESSIONS,
      bytesPerPersistentSession: Math.round((sessions - before) / SESSIONS),
      queued: SESSIONS * QUEUED_EACH,
      bytesPerQueuedMessage: Math.round((withQueues - sessions) / (SESSIONS * QUEUED_EACH)),
      retained: SESSIONS,
      bytesPerRetainedMessage: Math.round((withRetained - withQueues) / SESSIONS),
      bytesPerConnectedCleanSession: Math.round((withConnected - withRetained) / SESSIONS),
    });
  } finally {
    await bridge.stop();
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  const plain = await startOwnRedis();
  const synced = parts.includes('downlink') ? await startOwnRedis({ appendonly: true }) : null;
  const load = LoadGenerator.start();
  try {
    if (parts.includes('downlink')) {
      await compare(load, 'downlink QoS 1 to 1,000 persistent subscribers', [memoryVariant, redisVariant('redis', plain), redisVariant('redis appendfsync always', synced!)], (context) =>
        downlink(context, 1_000, 1, true),
      );
    }
    if (parts.includes('downlink-clean')) {
      await compare(load, 'downlink QoS 1 to 1,000 clean-session subscribers', [memoryVariant, redisVariant('redis', plain)], (context) => downlink(context, 1_000, 1));
    }
    if (parts.includes('workers')) {
      await compare(load, 'uplink QoS 1, no MQTT subscriber, redis', [redisVariant('redis, 1 process', plain), redisVariant('redis, --workers 2', plain, 2)], (context) => uplink(context, 1));
    }
    if (parts.includes('cpu')) {
      for (const qos of [0, 1, 2] as const) {
        await compare(load, `uplink QoS ${qos}, no MQTT subscriber`, [memoryVariant, redisVariant('redis', plain)], (context) => uplink(context, qos));
      }
    }
    if (parts.includes('idle')) {
      for (const variant of [memoryVariant, redisVariant('redis', plain)]) {
        const tag = `idle${variant.name}${Date.now().toString(36)}`;
        const bridge = await startBridge(`bench-scale-${tag}`, [], variant.mqtt(0));
        try {
          const pid = variant.redis ? await redisPid(variant.redis) : null;
          const redisBefore = pid ? cpuSeconds(pid) : 0;
          const result = await connections({ target: bridge, targetName: variant.name, load, quick, repeats: 1, tag });
          // Each connection's claim and release of its client id; the keep-alive window's heartbeats are noise.
          const redisUsPerConnection = pid ? round(((cpuSeconds(pid) - redisBefore) * 1e6) / Math.max(1, result.connections as number)) : null;
          print({ figure: 'idle connections', variant: variant.name, ...result, redisCpuUsPerConnection: redisUsPerConnection });
        } finally {
          await bridge.stop();
        }
      }
    }
    if (parts.includes('memory')) await redisMemory(plain);
    if (parts.includes('rabbit')) await rabbitConfirms(load);
  } finally {
    load.stop();
    await plain.remove();
    await synced?.remove();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
