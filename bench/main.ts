/**
 * Benchmarks: `npm run bench -- [--scenario NAME] [--quick]`.
 * Starts the bridge as its own process (the CLI, on free ports, RabbitMQ-plugin-compatible
 * mapping), drives it with MQTT clients from this process, consumes on AMQP, and prints one
 * JSON line per scenario and a Markdown table. Nothing here asserts speed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';
import mqtt, { type MqttClient } from 'mqtt';
import { closeConnectionsNamed, withMemoryAlarm } from '../test/helpers/rabbitmqctl.js';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const PUBLISHERS = 10;
const PAYLOAD_BYTES = 64;
/** Publishes a client keeps unacknowledged (QoS 1/2) or written but not yet flushed (QoS 0). */
const WINDOW = 500;

interface ThroughputResult {
  scenario: string;
  messages: number;
  seconds: number;
  msgsPerSecond: number;
  lost: number;
  duplicated: number;
}

type Result = ThroughputResult | { scenario: string; [figure: string]: number | string | boolean };

interface Scenario {
  name: string;
  run(bridge: RunningBridge, quick: boolean): Promise<Result>;
}

interface RunningBridge {
  tcpPort: number;
  exchange: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  lines: Array<Record<string, unknown>>;
}

const scenarios: Scenario[] = [
  ...[0, 1, 2].map((qos) => ({
    name: `uplink-qos${qos}`,
    run: (bridge: RunningBridge, quick: boolean) => uplink(bridge, qos as 0 | 1 | 2, quick ? 20_000 : 100_000),
  })),
  ...[0, 1].map((qos) => ({
    name: `downlink-qos${qos}`,
    run: (bridge: RunningBridge, quick: boolean) => downlink(bridge, qos as 0 | 1, quick ? 20_000 : 100_000),
  })),
  { name: 'recovery', run: (bridge: RunningBridge) => recovery(bridge) },
  { name: 'overload', run: (_bridge: RunningBridge, quick: boolean) => overload(quick ? 100_000 : 1_000_000) },
];

async function startBridge(name = `bench-${process.pid}`): Promise<RunningBridge> {
  const exchange = name;
  const dir = mkdtempSync(join(tmpdir(), 'bridge-bench-'));
  const file = join(dir, 'bridge.yaml');
  writeFileSync(
    file,
    [
      'mqtt:',
      '  listeners: [{ type: tcp, host: 127.0.0.1, port: 0 }]',
      'amqp:',
      `  url: ${AMQP_URL}`,
      `  connectionName: ${exchange}`,
      `  exchanges: [{ name: ${exchange}, type: topic, durable: false, autoDelete: false }]`,
      'uplink:',
      `  - { name: all, topic: "#", exchange: ${exchange}, routingKey: "{#}" }`,
      'downlink:',
      `  - { name: down0, exchange: ${exchange}, routingKey: "down0.{device}", topic: "bench/down0/{device}", qos: 0, queueName: ${exchange}-down0, prefetch: 1000 }`,
      `  - { name: down1, exchange: ${exchange}, routingKey: "down1.{device}", topic: "bench/down1/{device}", qos: 1, queueName: ${exchange}-down1, prefetch: 1000 }`,
      'log: { level: info }',
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'run', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.on('exit', () => child.kill('SIGKILL'));
  const lines: Array<Record<string, unknown>> = [];
  const tcpPort = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    let port = 0;
    let connected = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n').slice(0, -1)) {
        const entry = JSON.parse(line) as { listener?: string; address?: string; msg?: string };
        lines.push(entry);
        if (entry.listener === 'tcp') port = Number(new URL(entry.address!).port);
        if (entry.msg === 'AMQP connected; exchanges declared') connected = true;
        if (connected && port) resolve(port);
      }
      buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
    });
    child.once('exit', (code) => reject(new Error(`bridge exited with ${code}`)));
  });
  return { tcpPort, exchange, child, lines };
}

async function stopBridge(bridge: RunningBridge): Promise<void> {
  const exited = new Promise((resolve) => bridge.child.once('exit', resolve));
  bridge.child.kill('SIGTERM');
  await exited;
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createChannel();
  await channel.deleteExchange(bridge.exchange);
  for (const queue of [`${bridge.exchange}-down0`, `${bridge.exchange}-down1`]) await channel.deleteQueue(queue);
  await connection.close();
}

/** Resident set size of a process in MiB: now (VmRSS) or its peak so far (VmHWM). */
function rssMiB(pid: number, which: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(new RegExp(`${which}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return Math.round((kib / 1024) * 10) / 10;
}

async function uplink(bridge: RunningBridge, qos: 0 | 1 | 2, total: number): Promise<ThroughputResult> {
  const connection = await amqplib.connect(AMQP_URL);
  connection.on('error', (error: Error) => console.error('bench AMQP connection error:', error.message));
  const channel = await connection.createChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, bridge.exchange, `bench.qos${qos}.#`);
  const seen = new Uint8Array(total);
  let received = 0;
  let duplicated = 0;
  let lastArrival = 0;
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      const id = message.content.readUInt32BE(0);
      if (seen[id]) duplicated++;
      else received++;
      seen[id] = 1;
      lastArrival = performance.now();
    },
    { noAck: true },
  );
  const clients: MqttClient[] = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${bridge.tcpPort}`, { clientId: `bench-${qos}-${i}`, protocolVersion: 4, reconnectPeriod: 0 }),
    ),
  );
  const perClient = Math.floor(total / PUBLISHERS);
  const started = performance.now();
  await Promise.all(
    clients.map(async (client, c) => {
      const payload = Buffer.alloc(PAYLOAD_BYTES, 0x61);
      let inFlight: Array<Promise<unknown>> = [];
      for (let i = 0; i < perClient; i++) {
        const body = Buffer.from(payload);
        body.writeUInt32BE(c * perClient + i, 0);
        inFlight.push(client.publishAsync(`bench/qos${qos}/${c}`, body, { qos }));
        if (inFlight.length >= WINDOW) {
          await Promise.all(inFlight);
          inFlight = [];
        }
      }
      await Promise.all(inFlight);
    }),
  );
  const sent = perClient * PUBLISHERS;
  const deadline = Date.now() + 30_000;
  while (received < sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const seconds = ((received > 0 ? lastArrival : performance.now()) - started) / 1000;
  await Promise.all(clients.map((client) => client.endAsync()));
  await connection.close();
  return {
    scenario: `uplink-qos${qos}`,
    messages: sent,
    seconds: Number(seconds.toFixed(3)),
    msgsPerSecond: Math.round(received / seconds),
    lost: sent - received,
    duplicated,
  };
}

/** An AMQP publisher (confirms, 1,000 in flight) to 10 MQTT subscribers, each on its own topic. */
async function downlink(bridge: RunningBridge, qos: 0 | 1, total: number): Promise<ThroughputResult> {
  const seen = new Uint8Array(total);
  let received = 0;
  let duplicated = 0;
  let lastArrival = 0;
  const clients: MqttClient[] = await Promise.all(
    Array.from({ length: PUBLISHERS }, async (_, i) => {
      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${bridge.tcpPort}`, { clientId: `bench-down-${qos}-${i}`, protocolVersion: 4, reconnectPeriod: 0 });
      client.on('message', (_topic, payload) => {
        const id = payload.readUInt32BE(0);
        if (seen[id]) duplicated++;
        else received++;
        seen[id] = 1;
        lastArrival = performance.now();
      });
      await client.subscribeAsync(`bench/down${qos}/d${i}`, { qos });
      return client;
    }),
  );
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  const payload = Buffer.alloc(PAYLOAD_BYTES, 0x62);
  const started = performance.now();
  for (let id = 0; id < total; id++) {
    const body = Buffer.from(payload);
    body.writeUInt32BE(id, 0);
    channel.publish(bridge.exchange, `down${qos}.d${id % PUBLISHERS}`, body);
    if (id % 1_000 === 999) await channel.waitForConfirms();
  }
  await channel.waitForConfirms();
  const deadline = Date.now() + 30_000;
  while (received < total && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const seconds = ((received > 0 ? lastArrival : performance.now()) - started) / 1000;
  await connection.close();
  await Promise.all(clients.map((client) => client.endAsync()));
  return {
    scenario: `downlink-qos${qos}`,
    messages: total,
    seconds: Number(seconds.toFixed(3)),
    msgsPerSecond: Math.round(received / seconds),
    lost: total - received,
    duplicated,
  };
}

/**
 * QoS 1 streams from 10 clients; the bridge's AMQP connection is closed by RabbitMQ (as
 * `rabbitmqctl close_connection` does) one second in: the longest gap between two PUBACKs is
 * the time the bridge needs to reconnect, declare its topology and resend what was unconfirmed.
 */
async function recovery(bridge: RunningBridge): Promise<Result> {
  const clients: MqttClient[] = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${bridge.tcpPort}`, { clientId: `bench-rec-${i}`, protocolVersion: 4, reconnectPeriod: 100, clean: false }),
    ),
  );
  let lastAck = performance.now();
  let longestGap = 0;
  let acked = 0;
  let running = true;
  const streams = clients.map(async (client, c) => {
    let i = 0;
    while (running) {
      const batch = Array.from({ length: 50 }, () => client.publishAsync(`bench/recovery/${c}`, `${i++}`, { qos: 1 }).then(() => {
        const now = performance.now();
        longestGap = Math.max(longestGap, now - lastAck);
        lastAck = now;
        acked++;
      }));
      await Promise.all(batch);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const gapBeforeKill = longestGap;
  await closeConnectionsNamed(bridge.exchange, 'bench: recovery');
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  running = false;
  await Promise.all(streams);
  await Promise.all(clients.map((client) => client.endAsync()));
  return {
    scenario: 'recovery',
    longestPubackGapMs: Math.round(longestGap),
    longestGapBeforeKillMs: Math.round(gapBeforeKill),
    acknowledged: acked,
  };
}

/**
 * The flow-control scenario: `total` QoS 0 messages offered by 10 publishers while RabbitMQ is
 * blocked by a memory alarm, then the alarm is lifted. Reports the bridge's peak RSS, the drops it
 * counted (and whether they equal what did not arrive), and the time to drain after the alarm.
 */
async function overload(total: number): Promise<Result> {
  const bridge = await startBridge(`bench-overload-${process.pid}`);
  const startRss = rssMiB(bridge.child.pid!, 'VmRSS');
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, bridge.exchange, 'bench.overload.#');
  let arrived = 0;
  let lastArrival = 0;
  await channel.consume(queue, () => {
    arrived++;
    lastArrival = performance.now();
  }, { noAck: true });
  const clients: MqttClient[] = await Promise.all(
    Array.from({ length: PUBLISHERS }, (_, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${bridge.tcpPort}`, { clientId: `bench-over-${i}`, protocolVersion: 4, reconnectPeriod: 0 }),
    ),
  );
  let offeredSeconds = 0;
  let drainSeconds = 0;
  await withMemoryAlarm(async (lift) => {
    const started = performance.now();
    const perClient = Math.floor(total / PUBLISHERS);
    const payload = Buffer.alloc(PAYLOAD_BYTES, 0x63);
    await Promise.all(
      clients.map(async (client, c) => {
        for (let i = 0; i < perClient; i++) {
          // publish() for QoS 0 calls back once the packet is written; wait every so often so
          // the client's own buffer stays small and the pace is the bridge's.
          if (i % 1_000 === 999) await client.publishAsync(`bench/overload/${c}`, payload, { qos: 0 });
          else client.publish(`bench/overload/${c}`, payload, { qos: 0 });
        }
      }),
    );
    offeredSeconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const lifted = performance.now();
    await lift();
    const quietSince = () => performance.now() - Math.max(lastArrival, lifted);
    while (quietSince() < 2_000) await new Promise((resolve) => setTimeout(resolve, 50));
    drainSeconds = ((lastArrival > lifted ? lastArrival : lifted) - lifted) / 1000;
  });
  const rss = rssMiB(bridge.child.pid!, 'VmHWM');
  await Promise.all(clients.map((client) => client.endAsync()));
  await connection.close();
  await stopBridge(bridge);
  const stopped = bridge.lines.find((line) => line.msg === 'stopped') as { totals?: { uplink_dropped?: Record<string, number> } } | undefined;
  const dropped = stopped?.totals?.uplink_dropped?.qos0_overflow ?? 0;
  const offered = Math.floor(total / PUBLISHERS) * PUBLISHERS;
  return {
    scenario: 'overload',
    offered,
    offeredSeconds: Number(offeredSeconds.toFixed(1)),
    arrived,
    droppedCounted: dropped,
    droppedEqualsNotArrived: dropped === offered - arrived,
    rssAtStartMiB: startRss,
    peakRssMiB: rss,
    drainSecondsAfterAlarm: Number(drainSeconds.toFixed(2)),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const wanted = args.includes('--scenario') ? args[args.indexOf('--scenario') + 1] : undefined;
  const selected = scenarios.filter((scenario) => !wanted || scenario.name === wanted);
  if (selected.length === 0) throw new Error(`no scenario "${wanted}"; have ${scenarios.map((s) => s.name).join(', ')}`);
  const bridge = await startBridge();
  const results: Result[] = [];
  try {
    for (const scenario of selected) {
      const result = await scenario.run(bridge, quick);
      console.log(JSON.stringify(result));
      results.push(result);
    }
  } finally {
    await stopBridge(bridge);
  }
  console.log('\n| scenario | figures |\n| --- | --- |');
  for (const { scenario, ...figures } of results) {
    console.log(`| ${scenario} | ${Object.entries(figures).map(([key, value]) => `${key} ${typeof value === 'number' ? value.toLocaleString('en-US') : String(value)}`).join(', ')} |`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
