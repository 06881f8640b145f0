import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { delay, deleteExchanges, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge } from '../helpers/bridge.js';
import { topicToRoutingKey } from '../../src/mapping/encoding.js';

// Bounded: CASES connections of random and mutated MQTT packets, at most PARALLEL at once.
const CASES = 1_500;
const PARALLEL = 50;
const SEED = Number(process.env.FUZZ_SEED ?? 20261127);

const exchange = uniqueName('fuzz');
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    mqtt: { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], connectTimeoutMs: 1_000, maxPacketBytes: 64 * 1024 },
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

function fuzzCase(next: () => number): Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
  const topic = () => pick(['a/b', 'fuzz/x', '#', 'a/+/c', '', '$SYS/x', 'x'.repeat(300), 'a\u0000b', 'ü/€', bytes(8).toString('latin1')]);
  const connectPacket = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `fz${Math.floor(next() * 1e6)}`, keepalive: 30 } as Packet);
  const packets: Packet[] = [
    { cmd: 'publish', topic: 'fuzz/ok', payload: bytes(Math.floor(next() * 64)), qos: pick([0, 1, 2] as const), messageId: 1 + Math.floor(next() * 65534), dup: false, retain: next() < 0.1 } as Packet,
    { cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'fuzz/#', qos: 1 }] } as Packet,
    { cmd: 'pingreq' } as Packet,
    { cmd: 'pubrel', messageId: 3 } as Packet,
    { cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['fuzz/#'] } as Packet,
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

test(`fuzz - ${CASES} random and mutated packets: the bridge stays up, memory stays bounded, a good client keeps publishing, nothing malformed reaches RabbitMQ (seed ${SEED})`, async () => {
  const port = Number(new URL(bridge.url('tcp')).port);
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
  const ackedDuringFuzz = acked;
  publishing = false;
  await steady;
  await good.endAsync();
  console.log(`# fuzz: ${CASES} cases in ${Date.now() - started} ms, good client acked ${ackedDuringFuzz}, RSS ${Math.round(rssBefore / 2 ** 20)} -> peak ${Math.round(peakRss / 2 ** 20)} MiB`);
  assert.ok(ackedDuringFuzz > 20, `the good client kept publishing (${ackedDuringFuzz} acknowledged)`);
  assert.ok(peakRss - rssBefore < 256 * 2 ** 20, 'memory stayed bounded');
  // The bridge still serves a new client.
  const after = await connectClient(bridge.url('tcp'));
  await after.publishAsync('steady/after', 'still here', { qos: 1 });
  await after.endAsync();
  await waitFor(() => consumer.messages.some((message) => message.fields.routingKey === 'steady.after'), 'steady/after on AMQP');
  for (const message of consumer.messages) {
    const topic = String(message.properties.headers?.['x-mqtt-topic']);
    assert.doesNotMatch(topic, /[\u0000\ufffd+#]/, `a well-formed topic reached RabbitMQ: ${JSON.stringify(topic)}`);
    assert.ok(topic.length > 0 && !topic.startsWith('$'));
    assert.equal(message.fields.routingKey, topicToRoutingKey(topic));
  }
  assert.ok(consumer.messages.some((message) => message.fields.routingKey === 'steady.after'));
});
