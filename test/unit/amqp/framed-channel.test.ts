import assert from 'node:assert/strict';
import { test } from 'node:test';
import amqplib, { type ConfirmChannel } from 'amqplib';
import type { FrameWriter } from '../../../src/amqp/amqplib-internals.js';
import { FramedChannel, SLAB_BYTES } from '../../../src/amqp/framed-channel.js';
import { encodeAlone } from '../../helpers/publish-frames.js';
import { PublishFrameEncoder, type ExchangeMessage } from '../../../src/amqp/publish-frames.js';

/** What the channel hands amqplib: each call in order, confirms registered and chunks written. */
function recordingWriter(options: { full?: () => boolean; closed?: () => boolean } = {}) {
  const calls: Array<{ confirm: number } | { frames: Buffer }> = [];
  let confirms = 0;
  const writer: FrameWriter = {
    channelNumber: 3,
    frameMax: () => 131_072,
    expectConfirm() {
      if (options.closed?.()) throw new amqplib.IllegalOperationError('Channel closed', '');
      calls.push({ confirm: ++confirms });
    },
    writeFrames(frames) {
      calls.push({ frames });
    },
    needsDrain: () => options.full?.() ?? false,
  };
  const chunks = () => calls.flatMap((call) => ('frames' in call ? [call.frames] : []));
  return { writer, calls, chunks };
}

function message(n: number, contentBytes = 16): ExchangeMessage {
  return {
    exchange: 'amq.topic',
    routingKey: `sensors.t${n}.temperature`,
    content: Buffer.alloc(contentBytes, n % 251),
    headers: { 'x-mqtt-topic': `sensors/t${n}/temperature`, 'x-mqtt-qos': 1, 'x-mqtt-client-id': `device-${n}` },
    properties: { persistent: true },
    messageId: `id-${n}`,
    timestamp: 1_796_000_000 + n,
    receivedAt: 0,
    atMostOnce: false,
  };
}

/** Each message's frames in a buffer of their own, as amqplib got them one by one before batching. */
const reference = new PublishFrameEncoder();
const framesOf = (messages: ExchangeMessage[]) => Buffer.concat(messages.map((m) => encodeAlone(reference, 3, 131_072, m)));
const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

test('FramedChannel - the publishes of one tick reach amqplib as one chunk, after their confirms, byte for byte as one at a time', async () => {
  const { writer, calls, chunks } = recordingWriter();
  const channel = new FramedChannel({} as ConfirmChannel, writer);
  const first = [1, 2, 3].map((n) => message(n));
  for (const m of first) assert.equal(channel.publish(m, () => {}), true);
  assert.deepEqual(calls, [{ confirm: 1 }, { confirm: 2 }, { confirm: 3 }], 'nothing written before the end of the tick');
  await nextTick();
  assert.equal(chunks().length, 1);
  assert.deepEqual(chunks()[0], framesOf(first));
  const second = [4, 5].map((n) => message(n));
  for (const m of second) channel.publish(m, () => {});
  await nextTick();
  assert.equal(chunks().length, 2, 'the next tick is its own chunk');
  assert.deepEqual(chunks()[1], framesOf(second));
  assert.deepEqual(chunks()[0], framesOf(first), 'the first chunk is not written over');
});

test('FramedChannel - a full slab and a publish too large for one are written in order, and no chunk handed over changes', async () => {
  const { writer, chunks } = recordingWriter();
  const channel = new FramedChannel({} as ConfirmChannel, writer);
  const messages: ExchangeMessage[] = [];
  for (let n = 0; n < 1_000; n++) messages.push(message(n, n === 500 ? SLAB_BYTES : 200 + (n % 7) * 100));
  for (const m of messages.slice(0, 600)) channel.publish(m, () => {});
  const early = chunks().map((chunk) => Buffer.from(chunk));
  for (const m of messages.slice(600)) channel.publish(m, () => {});
  await nextTick();
  assert.ok(chunks().length >= 5, `${chunks().length} chunks: full slabs and the large publish are flushed as they come`);
  assert.ok(chunks().some((chunk) => chunk.length > SLAB_BYTES), 'the large publish went alone');
  assert.ok(chunks().every((chunk) => chunk.length <= SLAB_BYTES || chunk.length === encodeAlone(reference, 3, 131_072, messages[500]!).length));
  assert.deepEqual(Buffer.concat(chunks()), framesOf(messages));
  early.forEach((chunk, i) => assert.deepEqual(chunks()[i], chunk, `chunk ${i}`));
});

test('FramedChannel - a publish that cannot be encoded registers no confirm and writes nothing; the next one goes on', async () => {
  const { writer, calls, chunks } = recordingWriter();
  const channel = new FramedChannel({} as ConfirmChannel, writer);
  const tooLong = { ...message(1), routingKey: 'k'.repeat(256) };
  assert.throws(() => channel.publish(tooLong, () => {}), { code: 'BRIDGE_ERR_PUBLISH_TOO_LARGE' });
  assert.deepEqual(calls, []);
  channel.publish(message(2), () => {});
  await nextTick();
  assert.deepEqual(calls.length, 2);
  assert.deepEqual(chunks()[0], framesOf([message(2)]));
});

test("FramedChannel - publish says to wait for 'drain' while amqplib's buffer is full; a closed channel refuses a publish before taking it", async () => {
  let full = false;
  let closed = false;
  const { writer, calls, chunks } = recordingWriter({ full: () => full, closed: () => closed });
  const channel = new FramedChannel({} as ConfirmChannel, writer);
  full = true;
  assert.equal(channel.publish(message(1), () => {}), false);
  full = false;
  assert.equal(channel.publish(message(2), () => {}), true);
  closed = true;
  assert.throws(() => channel.publish(message(3), () => {}), (error) => error instanceof amqplib.IllegalOperationError);
  await nextTick();
  assert.equal(calls.filter((call) => 'confirm' in call).length, 2);
  assert.deepEqual(chunks(), [framesOf([message(1), message(2)])]);
});
