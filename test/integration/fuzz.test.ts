import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { delay, deleteExchanges, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge } from '../helpers/bridge.js';
import { connectBytes } from '../helpers/mqtt-bytes.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';
import { topicToRoutingKey } from '../../src/mapping/encoding.js';
import { encodeRemainingLength } from '../../src/mqtt/packet-encoding.js';

// Bounded: CASES connections of random and mutated MQTT packets, at most PARALLEL at once; then
// PARTIAL_CASES connections that announce a packet (often oversized) and send only part of it.
const CASES = 1_500;
const PARTIAL_CASES = 300;
const PARALLEL = 50;
const MAX_PACKET_BYTES = 64 * 1024;
const PACKET_TIMEOUT_MS = 500;
const SEED = Number(process.env.FUZZ_SEED ?? 20261127);

const exchange = uniqueName('fuzz');
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    mqtt: { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], connectTimeoutMs: 1_000, maxPacketBytes: MAX_PACKET_BYTES, packetTimeoutMs: PACKET_TIMEOUT_MS },
    ...forwardAllTo(exchange),
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await deleteExchanges(exchange);
});

/** mulberry32: a small seeded generator, so a failure can be replayed with FUZZ_SEED. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Will topics of the fuzz CONNECTs: one a will may have, the rest not. */
const WILL_TOPICS = ['fuzz/will/ok', 'fuzz/will/+', 'fuzz/#', '#', '+', 'fuzz/+/x', '', 'fuzz/a\u0000', 'a+b', 'a/#/b'];
/** A topic no PUBLISH may carry [MQTT-3.3.2-2] [MQTT-4.7.3-1] [MQTT-1.5.3]. */
const forbiddenInTopic = (topic: string) => ['\u0000', '\ufffd', '+', '#'].some((character) => topic.includes(character));

function fuzzCase(next: () => number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
  const topic = () => pick(['a/b', 'fuzz/x', '#', 'a/+/c', '', '$SYS/x', 'x'.repeat(300), 'a\u0000b', 'ü/€', bytes(8).toString('latin1')]);
  const connectPacket = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `fz${Math.floor(next() * 1e6)}`, keepalive: 30 });
  const packets: Packet[] = [
    { cmd: 'publish', topic: 'fuzz/ok', payload: bytes(Math.floor(next() * 64)), qos: pick([0, 1, 2] as const), messageId: 1 + Math.floor(next() * 65534), dup: false, retain: next() < 0.1 },
    { cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'fuzz/#', qos: 1 }] },
    { cmd: 'pingreq' },
    { cmd: 'pubrel', messageId: 3 },
    { cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['fuzz/#'] },
  ];
  let body: Buffer;
  try {
    body = mqttPacket.generate(pick(packets));
  } catch {
    body = bytes(16);
  }
  const stream = Buffer.concat([next() < 0.8 ? connectPacket : bytes(12), body, next() < 0.5 ? mqttPacket.generate(pick(packets)) : Buffer.alloc(0)]);
  // Mutate: flip bytes, truncate, splice garbage, or lie about a length.
  const mutated = Buffer.from(stream);
  const mutations = Math.floor(next() * 4);
  for (let i = 0; i < mutations; i++) {
    const at = Math.floor(next() * mutated.length);
    switch (pick(['flip', 'random', 'length'] as const)) {
      case 'flip':
        mutated[at] = mutated[at]! ^ (1 << Math.floor(next() * 8));
        break;
      case 'random':
        mutated[at] = Math.floor(next() * 256);
        break;
      case 'length':
        mutated[at] = 0xff;
        break;
    }
  }
  // Sometimes a CONNECT with a will, most of them with a topic no PUBLISH may have: the socket is
  // then dropped without DISCONNECT, so an accepted will is published.
  if (next() < 0.1) {
    const willTopic = pick<string | Buffer>([...WILL_TOPICS, Buffer.from([0x66, 0x2f, 0xff, 0xfe]), bytes(6)]);
    const will = { topic: willTopic, payload: bytes(8), qos: Math.floor(next() * 4), retain: next() < 0.5 };
    return Buffer.concat([connectBytes({ clientId: `fzw${Math.floor(next() * 1e6)}`, will }), next() < 0.3 ? body : Buffer.alloc(0)]);
  }
  const cut = next() < 0.2 ? Math.floor(next() * mutated.length) : mutated.length;
  const tail = next() < 0.1 ? bytes(Math.floor(next() * 200)) : Buffer.alloc(0);
  // Sometimes a publish with a topic written by hand, valid framing, hostile content.
  if (next() < 0.15) {
    const name = Buffer.from(topic(), 'latin1');
    const payload = bytes(10);
    const inner = Buffer.concat([Buffer.from([name.length >> 8, name.length & 0xff]), name, Buffer.from([0, 1]), payload]);
    return Buffer.concat([connectPacket, Buffer.from([0x32, inner.length & 0x7f]), inner]);
  }
  return Buffer.concat([mutated.subarray(0, cut), tail]);
}

/** A packet announced and never finished: after a CONNECT (whose CONNACK it may wait for) or instead of one. */
interface PartialCase {
  connect: 'none' | 'pipelined' | 'after-connack';
  header: Buffer;
  /** Bytes of the body sent (of what the header announces). */
  sent: number;
  /** How long the socket stays open, unless the bridge closes it: some past packetTimeoutMs. */
  holdMs: number;
}

function partialCase(next: () => number): PartialCase {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const announced = pick([
    Math.floor(next() * MAX_PACKET_BYTES), // within maxPacketBytes
    MAX_PACKET_BYTES,
    MAX_PACKET_BYTES + 1 + Math.floor(next() * 16_000_000), // oversized
    16_000_000,
    268_435_455, // the largest remaining length MQTT can write
  ]);
  const typeByte = pick([0x10, 0x30, 0x32, 0x34, 0x82, Math.floor(next() * 256)]);
  const lengthBytes = [...encodeRemainingLength(announced)];
  // Sometimes the header itself is cut.
  const header = Buffer.from([typeByte, ...lengthBytes]).subarray(0, next() < 0.1 ? 1 + Math.floor(next() * lengthBytes.length) : undefined);
  return {
    connect: pick(['none', 'pipelined', 'after-connack', 'after-connack'] as const),
    header,
    sent: Math.min(announced, Math.floor(next() * 200_000)),
    holdMs: 50 + Math.floor(next() * 2 * PACKET_TIMEOUT_MS),
  };
}

function sendPartialCase(port: number, partial: PartialCase, index: number): Promise<void> {
  const connectPacket = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `fzp${index}`, keepalive: 0 });
  const body = Buffer.alloc(partial.sent, 0x61);
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      if (partial.connect === 'after-connack') {
        socket.write(connectPacket);
        socket.once('data', () => socket.write(Buffer.concat([partial.header, body])));
      } else {
        socket.write(Buffer.concat([partial.connect === 'pipelined' ? connectPacket : Buffer.alloc(0), partial.header, body]));
      }
      setTimeout(() => socket.destroy(), partial.holdMs);
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

function sendCase(port: number, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(data);
      // Let the bridge answer or close, then go.
      setTimeout(() => socket.destroy(), 50 + Math.floor(data.length % 50));
    });
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

test(`fuzz - ${CASES} random and mutated packets and wills, ${PARTIAL_CASES} partial and oversized ones: the bridge stays up, memory stays bounded, a good client keeps publishing, nothing malformed reaches RabbitMQ, a subscriber or the retained store (seed ${SEED})`, async () => {
  const port = Number(new URL(bridge.url('tcp')).port);
  // Sees every PUBLISH the bridge delivers, wills included, exactly as written.
  const watcher = await RawMqttClient.open('tcp', bridge.url('tcp'));
  await watcher.connect('fuzz-watcher');
  watcher.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 1 }] });
  await watcher.next('suback');
  const good = await connectClient(bridge.url('tcp'));
  let acked = 0;
  let publishing = true;
  const steady = (async () => {
    for (let i = 0; publishing; i++) {
      await good.publishAsync('steady/good', String(i), { qos: 1 });
      acked++;
      await delay(10);
    }
  })();
  const rssBefore = process.memoryUsage().rss;
  let peakRss = rssBefore;
  const next = random(SEED);
  const cases = Array.from({ length: CASES }, () => fuzzCase(next));
  const started = Date.now();
  for (let i = 0; i < cases.length; i += PARALLEL) {
    await Promise.all(cases.slice(i, i + PARALLEL).map((data) => sendCase(port, data)));
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const partials = Array.from({ length: PARTIAL_CASES }, () => partialCase(next));
  for (let i = 0; i < partials.length; i += PARALLEL) {
    await Promise.all(partials.slice(i, i + PARALLEL).map((partial, j) => sendPartialCase(port, partial, i + j)));
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const ackedDuringFuzz = acked;
  publishing = false;
  await steady;
  await good.endAsync();
  // Everything the partial packets held is released once their connections are gone.
  await waitFor(async () => (await bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_buffered_bytes')) === 0, 'the buffered bytes to be released');
  const refusals = (await bridge.bridge.metrics.totals())['limits_refused'];
  console.log(
    `# fuzz: ${CASES} cases and ${PARTIAL_CASES} partial packets in ${Date.now() - started} ms, good client acked ${ackedDuringFuzz}, ` +
      `RSS ${Math.round(rssBefore / 2 ** 20)} -> peak ${Math.round(peakRss / 2 ** 20)} MiB, limits refused ${JSON.stringify(refusals)}`,
  );
  assert.ok(ackedDuringFuzz > 20, `the good client kept publishing (${ackedDuringFuzz} acknowledged)`);
  assert.ok(peakRss - rssBefore < 256 * 2 ** 20, 'memory stayed bounded');
  // The bridge still serves a new client.
  const after = await connectClient(bridge.url('tcp'));
  await after.publishAsync('steady/after', 'still here', { qos: 1 });
  await after.endAsync();
  await waitFor(() => consumer.messages.some((message) => message.fields.routingKey === 'steady.after'), 'steady/after on AMQP');
  const delivered = (client: RawMqttClient) => client.received.filter((packet) => packet.cmd === 'publish').map((packet) => (packet).topic);
  await waitFor(() => delivered(watcher).includes('fuzz/will/ok'), 'a will with a topic name at the subscriber');
  for (const topic of delivered(watcher)) assert.ok(!forbiddenInTopic(topic), `a well-formed topic reached a subscriber: ${JSON.stringify(topic)}`);
  watcher.destroy();
  // Nothing malformed was retained either: a new subscriber gets only well-formed retained topics.
  const sentinel = await connectClient(bridge.url('tcp'));
  await sentinel.publishAsync('steady/retained', 'sentinel', { qos: 1, retain: true });
  await sentinel.endAsync();
  const late = await RawMqttClient.open('tcp', bridge.url('tcp'));
  await late.connect('fuzz-late');
  late.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }] });
  await late.next('suback');
  await waitFor(() => delivered(late).includes('steady/retained'), 'the retained sentinel');
  await delay(200);
  for (const topic of delivered(late)) assert.ok(!forbiddenInTopic(topic), `a well-formed retained topic: ${JSON.stringify(topic)}`);
  late.destroy();
  assert.ok(consumer.messages.some((message) => message.properties.headers?.['x-mqtt-topic'] === 'fuzz/will/ok'), 'a will with a topic name reached RabbitMQ');
  for (const message of consumer.messages) {
    const topic = String(message.properties.headers?.['x-mqtt-topic']);
    assert.ok(!forbiddenInTopic(topic), `a well-formed topic reached RabbitMQ: ${JSON.stringify(topic)}`);
    assert.ok(topic.length > 0 && !topic.startsWith('$'));
    assert.equal(message.fields.routingKey, topicToRoutingKey(topic));
  }
  assert.ok(consumer.messages.some((message) => message.fields.routingKey === 'steady.after'));
});
