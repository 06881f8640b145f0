import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import type { Options } from 'amqplib';
import { encodeAlone } from '../../helpers/publish-frames.js';
import { PublishFrameEncoder, type ExchangeMessage } from '../../../src/amqp/publish-frames.js';
import type { PublishError } from '../../../src/errors.js';

/**
 * The reference is amqplib's own publish path, which the bridge used until it encoded the frames
 * itself: Args.publish, then Connection.sendMessage, whose bytes are read back from the channel's
 * frame buffer. Every byte must be the same.
 */
const fromAmqplib = createRequire(createRequire(import.meta.url).resolve('amqplib'));
const { Connection } = fromAmqplib('./lib/connection.js') as {
  Connection: new (stream: PassThrough) => {
    frameMax: number;
    channels: Array<{ buffer: PassThrough } | undefined>;
    freshChannel(channel: object): number;
    sendMessage(channel: number, method: unknown, fields: unknown, properties: unknown, props: unknown, content: Buffer): boolean;
  };
};
const defs = fromAmqplib('./lib/defs.js') as { BasicPublish: unknown; BasicProperties: unknown };
const { parseFrame, decodeFrame } = fromAmqplib('./lib/frame.js') as {
  parseFrame: (bytes: Buffer, max: number) => { rest: Buffer } | false;
  decodeFrame: (frame: unknown) => { fields?: Record<string, unknown>; size?: number; content?: Buffer };
};
const { publish: publishArgs } = (fromAmqplib('./lib/api_args.js') as { publish: (exchange: string, routingKey: string, options: Options.Publish) => unknown });

/** What the bridge handed amqplib for a message before it encoded the frames itself. */
function amqplibOptions(message: ExchangeMessage): Options.Publish {
  const { properties } = message;
  const options: Options.Publish = { persistent: properties.persistent, headers: message.headers, messageId: message.messageId, timestamp: message.timestamp };
  for (const key of ['contentType', 'contentEncoding', 'type', 'appId', 'correlationId', 'replyTo', 'priority', 'expiration'] as const) {
    if (properties[key] !== undefined) (options as Record<string, unknown>)[key] = properties[key];
  }
  return options;
}

function amqplibFrames(message: ExchangeMessage, frameMax: number, channelNumber = 1): Buffer {
  const connection = new Connection(new PassThrough());
  connection.frameMax = frameMax;
  const channel = connection.freshChannel({});
  assert.equal(channel, channelNumber);
  const fields = publishArgs(message.exchange, message.routingKey, amqplibOptions(message));
  connection.sendMessage(channel, defs.BasicPublish, fields, defs.BasicProperties, fields, message.content);
  const chunks: Buffer[] = [];
  for (let chunk = connection.channels[channel]!.buffer.read() as Buffer | null; chunk; chunk = connection.channels[channel]!.buffer.read() as Buffer | null) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function message(overrides: Partial<ExchangeMessage> = {}): ExchangeMessage {
  return {
    exchange: 'amq.topic',
    routingKey: 'sensors.t1.temperature',
    content: Buffer.from('{"celsius":21.5}'),
    headers: { 'x-mqtt-topic': 'sensors/t1/temperature', 'x-mqtt-qos': 1, 'x-mqtt-client-id': 'device-1' },
    properties: { persistent: true },
    messageId: '0b3c2c8e-52a4-4f47-9d2c-6e1a0d1b8f11',
    timestamp: 1_796_000_000,
    receivedAt: 1_796_000_000_123,
    atMostOnce: false,
    ...overrides,
  };
}

const encoder = new PublishFrameEncoder();

const cases: Array<[string, ExchangeMessage, number?]> = [
  ['a QoS 1 publish as the default rule makes it', message()],
  ['a QoS 0 publish (transient)', message({ properties: { persistent: false }, atMostOnce: true })],
  ['an empty payload (no body frame)', message({ content: Buffer.alloc(0) })],
  ['a retained publish and a rule header', message({ headers: { 'x-mqtt-topic': 'a/b', 'x-mqtt-qos': 2, 'x-mqtt-client-id': 'c', 'x-mqtt-retain': true, site: 'plant-7' } })],
  [
    'every property a rule can set',
    message({
      properties: {
        persistent: true,
        contentType: 'application/json',
        contentEncoding: 'gzip',
        type: 'reading',
        appId: 'bridge',
        correlationId: 'corr-1',
        replyTo: 'replies',
        priority: 7,
        expiration: '60000',
      },
    }),
  ],
  ['the default exchange and an empty routing key', message({ exchange: '', routingKey: '' })],
  [
    'ASCII up to a last non-ASCII character, strings of 64 and 65 characters, a lone surrogate',
    message({ routingKey: `${'a'.repeat(63)}é`, messageId: 'm'.repeat(64), headers: { 'x-mqtt-client-id': 'c'.repeat(65), lone: 'ab\ud800', ['k'.repeat(64)]: 'x' } }),
  ],
  ['non-ASCII names and values', message({ routingKey: 'capteurs.température', headers: { 'x-mqtt-topic': 'capteurs/température/😀', zone: 'Zürich', 'név': 'ő' } })],
  [
    'numbers of every width, and a header left undefined',
    message({ headers: { b: -128, s: 300, i: -70_000, l: 2 ** 40, d: 1.5, big: 2 ** 60, neg: -(2 ** 45), gone: undefined as unknown as string, zero: 0 } }),
  ],
  ['header names that look like indexes (objects put them first)', message({ headers: { z: 'last?', '10': 'ten', '2': 'two' } })],
  ['a payload split over body frames at frameMax', message({ content: Buffer.alloc(10_000, 7) }), 4096],
  ['a payload of exactly one frame', message({ content: Buffer.alloc(4096 - 8, 1) }), 4096],
  ['a large payload at the default frameMax', message({ content: Buffer.alloc(300_000, 3) }), 131_072],
  ['a timestamp past 2^32 seconds', message({ timestamp: 2 ** 33 + 5 })],
  ['a long header value', message({ headers: { long: 'x'.repeat(60_000) } })],
];

for (const [name, example, frameMax = 131_072] of cases) {
  test(`publish frames - byte for byte what amqplib sends: ${name}`, () => {
    assert.deepEqual(encodeAlone(encoder, 1, frameMax, example), amqplibFrames(example, frameMax));
  });
}

test('publish frames - headers past the 64 KiB amqplib could encode go out when they fit in a frame, and decode', () => {
  const example = message({ headers: { long: 'x'.repeat(100_000), n: 3 } });
  assert.throws(() => amqplibFrames(example, 131_072), /exceeds the 65536 byte encoding buffer/, 'amqplib refused these');
  let rest = encodeAlone(encoder, 1, 131_072, example);
  const decoded = [];
  for (let frame = parseFrame(rest, 131_072); frame; frame = parseFrame(rest, 131_072)) {
    decoded.push(decodeFrame(frame));
    rest = frame.rest;
  }
  assert.equal(decoded.length, 3);
  assert.deepEqual(decoded[0]!.fields, { ticket: 0, exchange: 'amq.topic', routingKey: 'sensors.t1.temperature', mandatory: false, immediate: false });
  assert.deepEqual((decoded[1]!.fields as { headers: unknown }).headers, { long: 'x'.repeat(100_000), n: 3 });
  assert.equal(decoded[1]!.size, example.content.length);
  assert.deepEqual(decoded[2]!.content, example.content);
});

test('publish frames - the channel number is in every frame', () => {
  const frames = encodeAlone(encoder, 513, 4096, message({ content: Buffer.alloc(5000) }));
  const channels: number[] = [];
  for (let offset = 0; offset < frames.length; offset += 8 + frames.readUInt32BE(offset + 3)) channels.push(frames.readUInt16BE(offset + 1));
  assert.deepEqual(channels, [513, 513, 513, 513], 'method, header and two body frames');
});

test('publish frames - one encoder encodes message after message (its scratch buffer leaves nothing behind)', () => {
  const big = message({ headers: { long: 'y'.repeat(5000), n: 1 }, properties: { persistent: true, contentType: 'text/plain' } });
  const small = message({ headers: {} });
  encodeAlone(encoder, 1, 131_072, big);
  assert.deepEqual(encodeAlone(encoder, 1, 131_072, small), amqplibFrames(small, 131_072));
});

const tooLarge = (pattern: RegExp) => (error: PublishError) => error.code === 'BRIDGE_ERR_PUBLISH_TOO_LARGE' && pattern.test(error.message);

test('publish frames - properties larger than one frame are refused as too large, not sent for RabbitMQ to close the connection', () => {
  assert.throws(() => encodeAlone(encoder, 1, 4096, message({ headers: { big: 'z'.repeat(5000) } })), tooLarge(/headers do not fit in the message's AMQP content header/));
  assert.throws(() => encodeAlone(encoder, 1, 131_072, message({ headers: { big: 'é'.repeat(70_000) } })), tooLarge(/headers/), 'two bytes a character');
  assert.throws(() => encodeAlone(encoder, 1, 2 ** 31, message({ headers: { big: 'z'.repeat(300_000) } })), tooLarge(/at most 262144 bytes/));
  const fits = message({ headers: { big: 'z'.repeat(4000) } });
  assert.deepEqual(encodeAlone(encoder, 1, 4096, fits), amqplibFrames(fits, 4096), 'just under the frame');
});

test('publish frames - a short string over 255 bytes is refused as too large', () => {
  assert.throws(() => encodeAlone(encoder, 1, 131_072, message({ routingKey: 'k'.repeat(256) })), tooLarge(/routing key is 256 bytes; AMQP allows at most 255/));
  assert.throws(() => encodeAlone(encoder, 1, 131_072, message({ headers: { ['h'.repeat(300)]: 'v' } })), tooLarge(/a header name is 300 bytes/));
  assert.throws(() => encodeAlone(encoder, 1, 131_072, message({ messageId: 'é'.repeat(128) })), tooLarge(/messageId is 256 bytes/));
});
