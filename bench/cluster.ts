/**
 * Routing between bridge instances (`mqtt.persistence.type: redis`): `node --import tsx bench/cluster.ts [--quick]`.
 *
 * Starts its own redis-server on a free port (so that `INFO commandstats` counts only the bridges'
 * commands), two bridges A and B on it and a third, M, with `memory` persistence, all against the
 * machine's RabbitMQ; then measures, with the `mqtt` package from this process:
 * - device to device, within one instance (A to A, and M to M) and across two (A to B): msgs/s
 *   of a burst with the bridges' CPU per message (summed over the bridges on the path), and
 *   latency p50/p99 at a steady rate, QoS 0 and 1;
 * - Redis commands per uplink message, with no MQTT subscriber anywhere and with one on B;
 * - the two transports considered, bare: Redis PUBLISH to a SUBSCRIBE connection, and an AMQP
 *   publish to a queue with a consumer (RabbitMQ as the bus, one queue per instance).
 * Prints one JSON line per figure. Asserts nothing about speed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { AMQP_URL, delay, uniqueName, waitFor } from '../test/helpers/amqp.js';
import { freePort } from '../test/helpers/bridge-process.js';
import { startClusterBridge, type ClusterBridge } from '../test/helpers/cluster.js';
import { totalCpuSeconds } from './lib/proc.js';
import { latencyHistogram, median, percentilesMs, round, type Percentiles } from './lib/stats.js';

const quick = process.argv.includes('--quick');
const BURST = quick ? 5_000 : 20_000;
const RATE = 1_000;
const LATENCY_SECONDS = quick ? 3 : 8;
const UPLINK_MESSAGES = quick ? 2_000 : 10_000;
const PAYLOAD_BYTES = 64;
const WINDOW = 100;
/** Each device-to-device figure is the median of this many runs, the paths taking turns. */
const REPEAT = quick ? 1 : 3;

function print(figure: Record<string, unknown>): void {
  console.log(JSON.stringify(figure));
}

async function connect(url: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
}

/** Publishes `count` messages from `publisher`, at most WINDOW unacknowledged (QoS 1), and resolves when all were sent. */
async function burst(publisher: MqttClient, topic: string, count: number, qos: 0 | 1): Promise<void> {
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
  let next = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = () => {
      while (next < count && next - done < WINDOW) {
        next++;
        publisher.publish(topic, payload, { qos }, (error) => {
          if (error) reject(error);
          done++;
          if (done === count) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

interface Throughput {
  msgsPerSecond: number;
  /** CPU microseconds per message delivered, summed over the bridges on the path. */
  bridgeCpuUsPerMsg: number;
}

async function throughput(from: string, to: string, qos: 0 | 1, pids: readonly number[]): Promise<Throughput> {
  const topic = `bench/${uniqueName('tp')}`;
  const subscriber = await connect(to);
  let received = 0;
  subscriber.on('message', () => received++);
  await subscriber.subscribeAsync(topic, { qos });
  const publisher = await connect(from);
  const cpuBefore = totalCpuSeconds(pids);
  const started = performance.now();
  await burst(publisher, topic, BURST, qos);
  await waitFor(() => received >= BURST * (qos === 0 ? 0.99 : 1), () => `${BURST} messages (have ${received})`, 120_000).catch(() => {});
  const seconds = (performance.now() - started) / 1000;
  const cpu = totalCpuSeconds(pids) - cpuBefore;
  await publisher.endAsync();
  await subscriber.endAsync();
  return { msgsPerSecond: Math.round(received / seconds), bridgeCpuUsPerMsg: round((cpu * 1e6) / Math.max(1, received)) };
}

async function latency(from: string, to: string, qos: 0 | 1): Promise<Percentiles> {
  const topic = `bench/${uniqueName('lat')}`;
  const subscriber = await connect(to);
  const histogram = latencyHistogram();
  subscriber.on('message', (_topic, payload) => {
    const sent = payload.readDoubleBE(0);
    histogram.recordValue(Math.max(1, Math.round((performance.now() - sent) * 1000)));
  });
  await subscriber.subscribeAsync(topic, { qos });
  const publisher = await connect(from);
  const total = RATE * LATENCY_SECONDS;
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await delay(wait);
    const payload = Buffer.alloc(PAYLOAD_BYTES);
    payload.writeDoubleBE(performance.now(), 0);
    publisher.publish(topic, payload, { qos });
  }
  await waitFor(() => histogram.totalCount >= total * 0.99, 'the latency messages', 30_000).catch(() => {});
  const percentiles = percentilesMs(histogram);
  histogram.destroy();
  await publisher.endAsync();
  await subscriber.endAsync();
  return percentiles;
}

/** Calls per Redis command while `work` runs (INFO commandstats, reset before). */
async function commandsDuring(redis: Redis, work: () => Promise<void>): Promise<Record<string, number>> {
  await redis.config('RESETSTAT');
  await work();
  const info = await redis.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1]!] = Number(match[2]);
  for (const name of Object.keys(calls)) if (name.startsWith('config') || name.startsWith('info')) delete calls[name];
  return calls;
}

async function uplinkCommands(redis: Redis, a: ClusterBridge, b: ClusterBridge): Promise<void> {
  const topic = `bench/${uniqueName('uplink')}/telemetry`;
  const publisher = await connect(a.url('tcp'));
  for (const [subscribed, label] of [
    [false, 'no MQTT subscriber anywhere'],
    [true, 'a subscriber on B'],
  ] as const) {
    let watcher: MqttClient | null = null;
    if (subscribed) {
      watcher = await connect(b.url('tcp'));
      await watcher.subscribeAsync(topic, { qos: 1 });
      await delay(200);
    }
    const calls = await commandsDuring(redis, () => burst(publisher, topic, UPLINK_MESSAGES, 1));
    const total = Object.values(calls).reduce((sum, count) => sum + count, 0);
    print({ figure: 'Redis commands per uplink QoS 1 message', case: label, messages: UPLINK_MESSAGES, commands: calls, perMessage: round(total / UPLINK_MESSAGES, 3) });
    await watcher?.endAsync();
  }
  await publisher.endAsync();
}

/** The bare transports: one message at a time at RATE for latency, then a burst for throughput. */
async function transports(redisUrl: string): Promise<void> {
  const payload = Buffer.alloc(PAYLOAD_BYTES + 60);
  // Redis pub/sub, as the cluster emitter uses it.
  {
    const publisher = new Redis(redisUrl);
    const subscriber = new Redis(redisUrl);
    const histogram = latencyHistogram();
    let received = 0;
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      received++;
      if (message.readUInt8(8) === 1) histogram.recordValue(Math.max(1, Math.round((performance.now() - message.readDoubleBE(0)) * 1000)));
    });
    await subscriber.subscribe('bench:inbox');
    for (let i = 0; i < RATE * 2; i++) {
      const frame = Buffer.from(payload);
      frame.writeDoubleBE(performance.now(), 0);
      frame.writeUInt8(1, 8);
      await publisher.publish('bench:inbox', frame);
      await delay(1);
    }
    received = 0;
    const started = performance.now();
    const frame = Buffer.from(payload);
    await Promise.all(Array.from({ length: BURST }, () => publisher.publish('bench:inbox', frame)));
    await waitFor(() => received >= BURST, 'the Redis burst', 30_000);
    print({ figure: 'transport, bare', transport: 'Redis PUBLISH/SUBSCRIBE', msgsPerSecond: Math.round(BURST / ((performance.now() - started) / 1000)), latency: percentilesMs(histogram) });
    histogram.destroy();
    publisher.disconnect();
    subscriber.disconnect();
  }
  // RabbitMQ: a queue per instance, publisher confirms, consumer acks (what acknowledged delivery would cost).
  {
    const connection = await amqplib.connect(AMQP_URL, { noDelay: true });
    const channel = await connection.createConfirmChannel();
    const consumerChannel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await consumerChannel.prefetch(1_000);
    const histogram = latencyHistogram();
    let received = 0;
    await consumerChannel.consume(queue, (message) => {
      if (!message) return;
      received++;
      if (message.content.readUInt8(8) === 1) histogram.recordValue(Math.max(1, Math.round((performance.now() - message.content.readDoubleBE(0)) * 1000)));
      consumerChannel.ack(message);
    });
    for (let i = 0; i < RATE * 2; i++) {
      const frame = Buffer.from(payload);
      frame.writeDoubleBE(performance.now(), 0);
      frame.writeUInt8(1, 8);
      channel.publish('', queue, frame);
      await channel.waitForConfirms();
      await delay(1);
    }
    received = 0;
    const started = performance.now();
    for (let i = 0; i < BURST; i++) channel.publish('', queue, Buffer.from(payload));
    await channel.waitForConfirms();
    await waitFor(() => received >= BURST, 'the AMQP burst', 60_000);
    print({ figure: 'transport, bare', transport: 'AMQP publish (confirmed) to a queue, consumer acks', msgsPerSecond: Math.round(BURST / ((performance.now() - started) / 1000)), latency: percentilesMs(histogram) });
    histogram.destroy();
    await connection.close();
  }
}

async function main(): Promise<void> {
  const port = await freePort();
  const redisServer = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no'], { stdio: 'ignore' });
  const redisUrl = `redis://127.0.0.1:${port}/0`;
  const redis = new Redis(redisUrl, { retryStrategy: (attempt) => (attempt > 50 ? null : 100) });
  redis.on('error', () => {}); // refused until redis-server listens
  await waitFor(() => redis.status === 'ready', 'redis-server to start');
  const directory = mkdtempSync(join(tmpdir(), 'bench-cluster-'));
  const exchange = uniqueName('bench-cluster');
  const clustered = () => ({
    mqtt: { persistence: { type: 'redis', url: redisUrl, keyPrefix: 'bench:' } },
    amqp: { exchanges: [{ name: exchange, type: 'topic', durable: false, autoDelete: false }] },
    uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
  });
  const bridges: ClusterBridge[] = [];
  try {
    const a = await startClusterBridge(directory, 'a', clustered());
    const b = await startClusterBridge(directory, 'b', clustered());
    const m = await startClusterBridge(directory, 'm', { ...clustered(), mqtt: {} });
    bridges.push(a, b, m);
    const pid = (bridge: ClusterBridge) => bridge.process.child.pid!;
    const paths = [
      ['within one instance, memory (M to M)', m.url('tcp'), m.url('tcp'), [pid(m)]],
      ['within one instance, redis (A to A)', a.url('tcp'), a.url('tcp'), [pid(a)]],
      ['across two instances (A to B)', a.url('tcp'), b.url('tcp'), [pid(a), pid(b)]],
    ] as const;
    // Warm-up (JIT, connections): one unmeasured burst on each path.
    for (const [, from, to, pids] of paths) await throughput(from, to, 1, pids);
    for (const qos of [0, 1] as const) {
      const runs = new Map<string, Throughput[]>(paths.map(([label]) => [label, []]));
      for (let run = 0; run < REPEAT; run++) for (const [label, from, to, pids] of paths) runs.get(label)!.push(await throughput(from, to, qos, pids));
      for (const [label, values] of runs) {
        print({
          figure: 'device-to-device throughput',
          path: label,
          qos,
          messages: BURST,
          msgsPerSecond: median(values.map((value) => value.msgsPerSecond)),
          bridgeCpuUsPerMsg: median(values.map((value) => value.bridgeCpuUsPerMsg)),
          runs: values.map((value) => value.msgsPerSecond),
        });
      }
    }
    for (const qos of [0, 1] as const) {
      const runs = new Map<string, Percentiles[]>(paths.map(([label]) => [label, []]));
      for (let run = 0; run < REPEAT; run++) for (const [label, from, to] of paths) runs.get(label)!.push(await latency(from, to, qos));
      for (const [label, values] of runs) {
        print({ figure: 'device-to-device latency (ms)', path: label, qos, ratePerSecond: RATE, p50: median(values.map((v) => v.p50)), p99: median(values.map((v) => v.p99)), runs: values.map(({ p50, p99 }) => ({ p50, p99 })) });
      }
    }
    await uplinkCommands(redis, a, b);
    await transports(redisUrl);
  } finally {
    await Promise.all(bridges.map((bridge) => bridge.stop()));
    redis.disconnect();
    redisServer.kill('SIGKILL');
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createChannel();
    await channel.deleteExchange(exchange).catch(() => {});
    await connection.close();
    rmSync(directory, { recursive: true, force: true });
  }
}

await main();
