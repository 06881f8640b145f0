/**
 * What the Redis state costs: `node --import tsx bench/redis-state.ts [--quick]`.
 *
 * Starts a redis-server of its own (no persistence on disk, so that fsync is not measured) and
 * the bridge as its own process, once with `mqtt.persistence.type: memory` and once with `redis`,
 * and prints:
 * - uplink QoS 1 msgs/s with no MQTT subscriber (the uplink scenario of the bench: 10 publishers,
 *   64-byte payloads, 500 in flight each), median of 3 runs, alternating memory and redis;
 * - Redis commands per message on each path, from `INFO commandstats` before and after (the
 *   heartbeat's own commands over the same time subtracted), by command: each EVALSHA is one
 *   round trip, the commands its Lua script runs are counted too.
 * Speed is never asserted.
 */
import amqplib from 'amqplib';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { startBridge, type RunningBridge } from './lib/bridge.js';
import type { BenchContext } from './lib/context.js';
import { LoadGenerator } from './lib/load.js';
import { uplink } from './scenarios/uplink.js';
import { AMQP_URL, waitFor } from '../test/helpers/amqp.js';
import { startOwnRedis } from '../test/helpers/redis.js';

const quick = process.argv.includes('--quick');
const MESSAGES = quick ? 500 : 2_000;

type Stats = Map<string, number>;

async function commandStats(redis: Redis): Promise<Stats> {
  const stats: Stats = new Map();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match && match[1] !== 'info') stats.set(match[1]!, Number(match[2]));
  }
  return stats;
}

function difference(after: Stats, before: Stats): Stats {
  const changed: Stats = new Map();
  for (const [command, calls] of after) if (calls !== (before.get(command) ?? 0)) changed.set(command, calls - (before.get(command) ?? 0));
  return changed;
}

/** Runs `action`, then as long again idle, and gives the commands per message of the action alone. */
async function perMessage(redis: Redis, messages: number, action: () => Promise<void>): Promise<Record<string, number>> {
  const before = await commandStats(redis);
  const started = Date.now();
  await action();
  const took = Date.now() - started;
  const during = difference(await commandStats(redis), before);
  const idleBefore = await commandStats(redis);
  await new Promise((resolve) => setTimeout(resolve, took));
  const idle = difference(await commandStats(redis), idleBefore);
  const figures: Record<string, number> = {};
  let total = 0;
  for (const [command, calls] of during) {
    const net = Math.max(0, calls - (idle.get(command) ?? 0));
    if (net / messages < 0.005) continue; // a connection's own claim and release, spread over its messages
    figures[command] = Math.round((net / messages) * 100) / 100;
    total += net;
  }
  // EVALSHA is one round trip (its commands run inside Redis); the bridge's other commands on these paths are reads when a queue is sent.
  return { ...figures, '(all commands)': Math.round((total / messages) * 100) / 100 };
}

async function client(url: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, ...options });
}

async function publishAll(url: string, topic: string, count: number): Promise<void> {
  const publisher = await client(url);
  const inFlight: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    inFlight.push(publisher.publishAsync(topic, Buffer.alloc(64, i % 256), { qos: 1 }));
    if (inFlight.length >= 200) await Promise.all(inFlight.splice(0));
  }
  await Promise.all(inFlight);
  await publisher.endAsync();
}

async function main(): Promise<void> {
  const redisServer = await startOwnRedis();
  const redis = new Redis(redisServer.url);
  const load = LoadGenerator.start();
  const persistence = (type: 'memory' | 'redis') =>
    ['  maxOfflineMessages: 100000', type === 'memory' ? '  persistence: { type: memory }' : `  persistence: { type: redis, url: "${redisServer.url}", keyPrefix: "bench:" }`];
  const results: Record<string, unknown> = {};
  try {
    // Throughput: alternate, 3 runs each, median.
    const rates: Record<'memory' | 'redis', number[]> = { memory: [], redis: [] };
    for (let run = 0; run < (process.argv.includes('--costs-only') ? 0 : 3); run++) {
      for (const type of ['memory', 'redis'] as const) {
        const bridge = await startBridge(`bench-state-${type}-${run}`, [], persistence(type));
        try {
          const context: BenchContext = { target: bridge, targetName: type, load, quick, repeats: 1, tag: `s${run}${type[0]}` };
          const result = await uplink(context, 1);
          rates[type].push(result.msgsPerSecond as number);
          console.log(JSON.stringify({ run, persistence: type, ...result }));
        } finally {
          await bridge.stop();
        }
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    results['uplink QoS 1 msgs/s, no MQTT subscriber'] = { memory: median(rates.memory), redis: median(rates.redis), ratio: Math.round((median(rates.redis) / median(rates.memory)) * 1000) / 1000 };

    // Commands per message, one bridge on Redis.
    const bridge: RunningBridge = await startBridge('bench-state-costs', [], persistence('redis'));
    try {
      const amqp = await amqplib.connect(AMQP_URL);
      const channel = await amqp.createChannel();
      const { queue } = await channel.assertQueue('', { exclusive: true });
      await channel.bindQueue(queue, 'amq.topic', `${bridge.prefix}.#`);
      let arrived = 0;
      await channel.consume(queue, () => void arrived++, { noAck: true });
      const until = async (count: number) => waitFor(() => arrived >= count, `${count} messages at RabbitMQ`, 120_000);

      results['uplink QoS 1, no MQTT subscriber'] = await perMessage(redis, MESSAGES, async () => {
        await publishAll(bridge.url, `${bridge.prefix}/none/x`, MESSAGES);
        await until(MESSAGES);
      });

      const offline = await client(bridge.url, { clientId: 'bench-offline', clean: false });
      await offline.subscribeAsync(`${bridge.prefix}/queued/#`, { qos: 1 });
      await offline.endAsync();
      results['uplink QoS 1 to a persistent subscriber that is offline'] = await perMessage(redis, MESSAGES, async () => {
        await publishAll(bridge.url, `${bridge.prefix}/queued/x`, MESSAGES);
        await until(2 * MESSAGES);
      });

      const device = await client(bridge.url, { clientId: 'bench-device', clean: false });
      await device.subscribeAsync(`${bridge.prefix}/down1/dev`, { qos: 1 });
      await device.endAsync();
      const commands = await amqp.createConfirmChannel();
      results['downlink QoS 1 to a persistent subscriber that is offline'] = await perMessage(redis, MESSAGES, async () => {
        for (let i = 0; i < MESSAGES; i++) commands.publish(bridge.commands, 'down1.dev', Buffer.alloc(64, i % 256));
        await commands.waitForConfirms();
        let queued = 0;
        await waitFor(async () => (queued = await redis.llen('bench:queue:bench-device')) >= MESSAGES, () => `the commands queued (${queued})`, 30_000);
      });

      let received = 0;
      results['those queued messages sent when the device comes back (update and clear)'] = await perMessage(redis, MESSAGES, async () => {
        const back = mqtt.connect(bridge.url, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'bench-device', clean: false });
        back.on('message', () => void received++);
        await waitFor(() => received >= MESSAGES, 'the queued commands delivered', 120_000);
        await waitFor(async () => (await redis.llen('bench:queue:bench-device')) === 0, 'the queue emptied', 120_000);
        await back.endAsync();
      });

      const online = mqtt.connect(bridge.url, { protocolVersion: 4, reconnectPeriod: 0, clientId: 'bench-device', clean: false });
      let live = 0;
      online.on('message', () => void live++);
      await new Promise((resolve) => online.once('connect', resolve));
      results['downlink QoS 1 to a persistent subscriber that is connected'] = await perMessage(redis, MESSAGES, async () => {
        for (let i = 0; i < MESSAGES; i++) commands.publish(bridge.commands, 'down1.dev', Buffer.alloc(64, i % 256));
        await commands.waitForConfirms();
        await waitFor(() => live >= MESSAGES, 'the live commands', 120_000);
        await waitFor(async () => (await redis.llen('bench:queue:bench-device')) === 0, 'the queue emptied', 120_000);
      });
      await online.endAsync();
      await amqp.close();
    } finally {
      await bridge.stop();
    }
  } finally {
    load.stop();
    redis.disconnect();
    await redisServer.remove();
  }
  console.log(JSON.stringify(results, null, 2));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
