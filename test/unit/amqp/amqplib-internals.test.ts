import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import amqplib, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { amqplibVersion, batchWrites, brokerReply, checkAmqplibInternals, confirmOutcome, frameWriter, isClosedChannelError } from '../../../src/amqp/amqplib-internals.js';

/** The installed amqplib's own modules, as the adapter's start-up check loads them. */
const requireFromAmqplib = createRequire(createRequire(import.meta.url).resolve('amqplib'));
const fromAmqplib = (path: string): unknown => requireFromAmqplib(path);
const { Connection } = fromAmqplib('./lib/connection.js') as { Connection: new (stream: PassThrough) => object };
const channelModel = fromAmqplib('./lib/channel_model.js') as {
  ChannelModel: new (connection: object) => ChannelModel;
  ConfirmChannel: new (connection: object) => { pushConfirmCallback(callback: (error: Error | null) => void): void; emit(event: string, ...args: unknown[]): boolean };
};
const confirmChannel = (connection: object) =>
  new channelModel.ConfirmChannel(connection) as unknown as { allocate(): void; toClosed(stack: string): void; toClosing(stack: string, then: () => void): void; emit(event: string, ...args: unknown[]): boolean };
const { convertCloseFrameToError } = fromAmqplib('./lib/channel.js') as {
  convertCloseFrameToError: (method: number, frame: { fields: { replyCode: number; replyText: string; classId: number; methodId: number } }) => Error;
};

const isDependencyError = (pattern: RegExp) => (error: Error & { code?: string }) =>
  error.code === 'BRIDGE_ERR_DEPENDENCY' && /^amqplib \d+\.\d+\.\d+ lacks/.test(error.message) && pattern.test(error.message);

test('amqplib internals - the installed amqplib has everything the bridge relies on', () => {
  assert.doesNotThrow(() => checkAmqplibInternals());
  assert.match(amqplibVersion(), /^\d+\.\d+\.\d+$/);
});

test('amqplib internals - a confirm callback tells an ack, a nack and a closed channel apart', () => {
  const channel = new channelModel.ConfirmChannel(new Connection(new PassThrough()));
  const outcomes: string[] = [];
  for (let i = 0; i < 3; i++) channel.pushConfirmCallback((error) => outcomes.push(confirmOutcome(error)));
  channel.emit('ack', { deliveryTag: 1, multiple: false });
  channel.emit('nack', { deliveryTag: 2, multiple: false });
  channel.emit('close');
  assert.deepEqual(outcomes, ['confirmed', 'nacked', 'channel-closed']);
});

test("amqplib internals - frameWriter puts frames in the channel's frame buffer and registers their confirms; a closed channel refuses them as amqplib does", () => {
  const connection = new Connection(new PassThrough()) as { frameMax: number; sentSinceLastCheck: boolean; channels: Array<{ buffer: PassThrough } | undefined> };
  connection.frameMax = 131_072;
  const channel = confirmChannel(connection);
  channel.allocate();
  const writer = frameWriter(channel as unknown as ConfirmChannel);
  assert.ok(writer);
  assert.equal(writer.channelNumber, 1);
  assert.equal(writer.frameMax(), 131_072);
  const outcomes: string[] = [];
  connection.sentSinceLastCheck = false;
  writer.expectConfirm((error) => outcomes.push(`1 ${confirmOutcome(error)}`));
  writer.expectConfirm((error) => outcomes.push(`2 ${confirmOutcome(error)}`));
  writer.writeFrames(Buffer.from('frames-1-and-2'));
  assert.equal(writer.needsDrain(), false);
  assert.equal(connection.sentSinceLastCheck, true, 'counts as traffic for the heartbeat');
  const buffer = connection.channels[1]!.buffer;
  assert.deepEqual(String(buffer.read()), 'frames-1-and-2');
  channel.emit('ack', { deliveryTag: 1, multiple: false });
  channel.emit('nack', { deliveryTag: 2, multiple: false });
  assert.deepEqual(outcomes, ['1 confirmed', '2 nacked']);
  for (let i = 0; i < 5000 && !writer.needsDrain(); i++) writer.writeFrames(Buffer.from('more'));
  assert.equal(writer.needsDrain(), true, "a full buffer (amqplib's high-water mark is 1,024 chunks) asks for 'drain'");
  while (buffer.read() !== null);
  channel.toClosed('');
  assert.throws(() => writer.expectConfirm(() => {}), (error) => isClosedChannelError(error));
  writer.writeFrames(Buffer.from('late'));
  assert.equal(buffer.read(), null, 'nothing is written on a closed channel');
  assert.equal(frameWriter({} as ConfirmChannel), null, 'a channel without those internals');
  const closing = confirmChannel(connection);
  closing.allocate();
  closing.toClosing('', () => {});
  const late = frameWriter(closing as unknown as ConfirmChannel);
  assert.ok(late);
  assert.throws(() => late.expectConfirm(() => {}), (error) => isClosedChannelError(error), 'a writer made for a channel already closing refuses too');
});

test("amqplib internals - RabbitMQ's reply code and text come out of what amqplib raises for a refused operation and for a channel closed by the server", () => {
  const frame = { fields: { replyCode: 404, replyText: "NOT_FOUND - no exchange 'x' in vhost '/'", classId: 40, methodId: 10 } };
  const exchangeDeclare = (40 << 16) + 10;
  assert.deepEqual(brokerReply(convertCloseFrameToError(exchangeDeclare, frame)), { code: 404, text: "NOT_FOUND - no exchange 'x' in vhost '/'" });
  assert.deepEqual(brokerReply(convertCloseFrameToError(0, frame)), { code: 404, text: "NOT_FOUND - no exchange 'x' in vhost '/'" });
  assert.equal(brokerReply(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), null, "a socket error's code is not a reply code");
  assert.equal(brokerReply(new Error('Heartbeat timeout')), null);
});

test('amqplib internals - an operation refused on a closing channel is recognised by its class', () => {
  assert.equal(isClosedChannelError(new amqplib.IllegalOperationError('Channel closed', '')), true);
  assert.equal(isClosedChannelError(new Error('Channel closed')), false);
});

test("amqplib internals - batchWrites corks the socket around each of the multiplexer's passes, once per connection", () => {
  const stream = new PassThrough();
  const connection = new Connection(stream) as { muxer: { _readIncoming(): void } };
  const calls: string[] = [];
  stream.cork = () => void calls.push('cork');
  stream.uncork = () => void calls.push('uncork');
  const model = new channelModel.ChannelModel(connection);
  assert.equal(batchWrites(model), true);
  connection.muxer._readIncoming();
  assert.deepEqual(calls, ['cork', 'uncork']);
  assert.equal(batchWrites(model), false, 'not wrapped twice');
  assert.equal(batchWrites({} as ChannelModel), false, 'a model without those internals is left as it is');
});

test('amqplib internals - an amqplib whose confirm callbacks word a nack otherwise fails the check with BRIDGE_ERR_DEPENDENCY naming its version', () => {
  class RewordedConfirmChannel extends channelModel.ConfirmChannel {
    override pushConfirmCallback(callback: (error: Error | null) => void): void {
      super.pushConfirmCallback((error) => callback(error && error.message === 'message nacked' ? new Error('nack') : error));
    }
  }
  const load = (path: string) => (path === './lib/channel_model.js' ? { ...channelModel, ConfirmChannel: RewordedConfirmChannel } : fromAmqplib(path));
  assert.throws(() => checkAmqplibInternals(load), isDependencyError(/"message nacked" and "channel closed" \(got channel-closed,channel-closed\)/));
});

test('amqplib internals - an amqplib without the modules or fields relied on fails the check', () => {
  assert.throws(
    () =>
      checkAmqplibInternals(() => {
        throw new Error('Cannot find module');
      }),
    isDependencyError(/lib\/connection\.js/),
  );
  const withoutMuxer = (path: string) =>
    path === './lib/connection.js'
      ? {
          Connection: class extends Connection {
            constructor(stream: PassThrough) {
              super(stream);
              delete (this as { muxer?: unknown }).muxer;
            }
          },
        }
      : fromAmqplib(path);
  assert.throws(() => checkAmqplibInternals(withoutMuxer), isDependencyError(/muxer\._readIncoming/));
});
