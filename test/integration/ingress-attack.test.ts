import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { memoryKiB } from '../../bench/lib/proc.js';
import { AMQP_URL, deleteExchanges, uniqueName, waitFor } from '../helpers/amqp.js';
import { BareConnection, fixedHeader } from '../helpers/bare-connection.js';
import { connectClient, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import { runBridgeProcess, waitForAmqp, type BridgeProcess } from '../helpers/bridge-process.js';
import { latencyHistogram, percentilesMs, type Percentiles } from '../../bench/lib/stats.js';

// The attack an outside probe ran, tripled: sockets that announce 16,000,000 bytes (within the
// default maxPacketBytes of 16 MiB), send 15 MB and never finish. Half of them as a CONNECT, half
// as a PUBLISH after logging in. The bridge runs as its own process with the default limits, so
// its memory is its own: read from /proc.

const MiB = 1024 * 1024;
const ANNOUNCED = 16_000_000;
const SENT = 15_000_000;
const SOCKETS = 100;
/** The attackers' source addresses (Linux routes all of 127/8 to lo): five for each kind, ten sockets each. */
const CONNECT_SOURCES = ['127.0.9.1', '127.0.9.2', '127.0.9.3', '127.0.9.4', '127.0.9.5'];
const PUBLISH_SOURCES = ['127.0.10.1', '127.0.10.2', '127.0.10.3', '127.0.10.4', '127.0.10.5'];
/** The default mqtt.maxBufferedBytes: all the partial packets together hold no more. */
const MAX_BUFFERED_BYTES = 256 * MiB;
/**
 * The stated bound: the bridge's peak RSS grows by at most maxBufferedBytes plus 128 MiB for
 * everything else (socket read buffers not yet charged, the refused sockets' last chunks,
 * garbage not yet collected).
 */
const RSS_BOUND_BYTES = MAX_BUFFERED_BYTES + 128 * MiB;
/** A generous sanity bound for one QoS 1 round trip (publish to PUBACK, through RabbitMQ) during the attack. */
const LATENCY_SANITY_MS = 2_000;

const exchange = uniqueName('ingress-attack');
let bridge: BridgeProcess | null = null;

interface Started {
  url: string;
  metricsUrl: string;
  pid: number;
}

/** A bridge process of its own for each transport, so that one round's memory is not the next one's. */
async function startBridge(transport: Transport): Promise<Started> {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-ingress-')), 'bridge.yaml');
  const listener = transport === 'tcp' ? '{ type: tcp, host: 127.0.0.1, port: 0 }' : '{ type: ws, host: 127.0.0.1, port: 0, path: /mqtt }';
  writeFileSync(
    file,
    [
      'mqtt:',
      `  listeners: [${listener}]`,
      'amqp:',
      `  url: ${AMQP_URL}`,
      `  exchanges: [{ name: ${exchange}, type: topic, durable: false }]`,
      'uplink:',
      `  - { name: all, topic: "#", exchange: ${exchange}, routingKey: "{#}" }`,
      'http: { host: 127.0.0.1, port: 0 }',
      'log: { level: info }',
      '',
    ].join('\n'),
  );
  const running = runBridgeProcess(['--config', file]);
  bridge = running;
  await waitForAmqp(running);
  const address = (match: (line: Record<string, unknown>) => boolean) => String(running.lines.find(match)?.address);
  return {
    url: address((line) => line.listener === transport).replace('0.0.0.0', '127.0.0.1'),
    metricsUrl: address((line) => typeof line.msg === 'string' && line.msg.startsWith('metrics and health on')),
    pid: running.child.pid!,
  };
}

async function stopBridge(): Promise<void> {
  const running = bridge;
  bridge = null;
  if (running && running.child.exitCode === null) {
    running.child.kill('SIGTERM');
    await running.exit;
  }
}

after(async () => {
  await stopBridge();
  await deleteExchanges(exchange);
});

async function refusedCounts(metricsUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^mqtt_amqp_bridge_limits_refused_total\{limit="([a-z_]+)"\} (\d+)/gm)) counts[match[1]!] = Number(match[2]);
  return counts;
}

function percentiles(latenciesMs: readonly number[]): Percentiles {
  const histogram = latencyHistogram();
  for (const ms of latenciesMs) histogram.recordValue(Math.max(1, Math.round(ms * 1000)));
  return percentilesMs(histogram);
}

/** Publishes QoS 1 one after another until told to stop; the milliseconds each took to its PUBACK. */
function keepPublishing(client: MqttClient, topic: string): { latencies: number[]; stop: () => Promise<void> } {
  const latencies: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const started = performance.now();
      await client.publishAsync(topic, String(i), { qos: 1 });
      latencies.push(performance.now() - started);
    }
  })();
  return {
    latencies,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** One attacking socket: announces a packet of ANNOUNCED bytes, sends SENT of them in 1 MB writes, stops when closed. */
async function attack(transport: Transport, url: string, localAddress: string, kind: 'connect' | 'publish', index: number, body: Buffer): Promise<BareConnection> {
  const connection = await BareConnection.open(transport, url, localAddress);
  if (kind === 'publish') {
    const code = await connection.connect(`attacker-${transport}-${index}`, 0);
    assert.equal(code, 0, 'the PUBLISH attackers log in first');
  }
  const header = fixedHeader(kind === 'connect' ? 0x10 : 0x30, ANNOUNCED);
  // Over WebSocket the packet is one message: a frame announcing the whole packet.
  connection.sendPartial(header, header.length + ANNOUNCED);
  for (let sent = 0; sent < SENT && !connection.closed; sent += body.length) await connection.sendMore(body);
  return connection;
}

for (const transport of TRANSPORTS) {
  test(`ingress attack ${transport} - ${SOCKETS} sockets announcing 16,000,000-byte CONNECTs and PUBLISHes: RSS stays bounded and a client keeps publishing`, async () => {
    const { url, metricsUrl, pid } = await startBridge(transport);
    const good = await connectClient(url, { clientId: uniqueName('good') });
    // Before: latency of a well-behaved client alone.
    const quiet = keepPublishing(good, `attack/${transport}/quiet`);
    await waitFor(() => quiet.latencies.length >= 300, '300 publishes before the attack', 30_000);
    await quiet.stop();
    const before = await refusedCounts(metricsUrl);
    const rssBefore = memoryKiB(pid, 'VmRSS') * 1024;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, memoryKiB(pid, 'VmRSS') * 1024)), 50);

    // During: the attack, and the same client publishing throughout.
    const loud = keepPublishing(good, `attack/${transport}/during`);
    const body = Buffer.alloc(1_000_000, 0x61); // one buffer, written to every socket
    const started = performance.now();
    const attackers = await Promise.all(
      Array.from({ length: SOCKETS }, (_, i) => {
        const kind = i % 2 === 0 ? 'connect' : 'publish';
        const sources = kind === 'connect' ? CONNECT_SOURCES : PUBLISH_SOURCES;
        return attack(transport, url, sources[Math.floor(i / 2) % sources.length]!, kind, i, body);
      }),
    );
    const attackSeconds = (performance.now() - started) / 1000;
    const whileSent = loud.latencies.length;
    // The partial packets that were accepted are held now (until packetTimeoutMs): keep publishing a while.
    await waitFor(() => loud.latencies.length >= whileSent + 200, '200 more publishes while the partial packets are held', 30_000);
    await loud.stop();
    clearInterval(sampler);
    rssPeak = Math.max(rssPeak, memoryKiB(pid, 'VmRSS') * 1024, memoryKiB(pid, 'VmHWM') * 1024);
    const held = attackers.filter((connection) => !connection.closed).length;
    const after = await refusedCounts(metricsUrl);
    for (const connection of attackers) connection.destroy();
    await good.endAsync();
    await stopBridge();

    const delta = (limit: string) => (after[limit] ?? 0) - (before[limit] ?? 0);
    const [calm, sending, holding] = [percentiles(quiet.latencies), percentiles(loud.latencies.slice(0, whileSent)), percentiles(loud.latencies.slice(whileSent))];
    console.log(
      `# ingress attack ${transport}: ${SOCKETS} sockets in ${attackSeconds.toFixed(1)} s; ${held} partial packets held; ` +
        `RSS ${Math.round(rssBefore / MiB)} -> peak ${Math.round(rssPeak / MiB)} MiB (bound +${RSS_BOUND_BYTES / MiB}); ` +
        `refused: connect_size ${delta('connect_size')}, packet_size ${delta('packet_size')}, buffered_bytes ${delta('buffered_bytes')}, buffered_bytes_per_address ${delta('buffered_bytes_per_address')}; ` +
        `good client QoS 1 latency p50/p99/max ms (count): before ${calm.p50}/${calm.p99}/${calm.max} (${calm.count}), ` +
        `while the attack was sent ${sending.p50}/${sending.p99}/${sending.max} (${sending.count}), ` +
        `while the partial packets were held ${holding.p50}/${holding.p99}/${holding.max} (${holding.count})`,
    );
    assert.ok(rssPeak - rssBefore <= RSS_BOUND_BYTES, `peak RSS grew by ${Math.round((rssPeak - rssBefore) / MiB)} MiB, at most ${RSS_BOUND_BYTES / MiB} MiB`);
    assert.equal(delta('connect_size'), SOCKETS / 2, 'every oversized CONNECT refused from its header');
    assert.ok(held <= MAX_BUFFERED_BYTES / (ANNOUNCED + 5), `${held} partial PUBLISHes held, no more than maxBufferedBytes allows`);
    assert.equal(delta('buffered_bytes') + delta('buffered_bytes_per_address'), SOCKETS / 2 - held, 'every other partial PUBLISH refused by a byte budget');
    assert.ok(sending.count > 0, 'PUBACKs kept arriving while the attack was sent');
    for (const during of [sending, holding]) {
      assert.ok(during.max < LATENCY_SANITY_MS, `every publish during the attack acknowledged within ${LATENCY_SANITY_MS} ms (the slowest took ${during.max} ms)`);
    }
  });
}
