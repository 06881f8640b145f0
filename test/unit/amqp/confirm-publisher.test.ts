import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { ChannelModel } from 'amqplib';
import { ConfirmPublisher, MAX_CHANNEL_ATTEMPTS } from '../../../src/amqp/confirm-publisher.js';
import { ExchangeDirectory } from '../../../src/amqp/exchange-directory.js';
import type { PublishChannel } from '../../../src/amqp/framed-channel.js';
import type { PublishError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/observability/logger.js';
import type { ExchangeDestination } from '../../../src/mapping/destination.js';
import type { OutboundMessage } from '../../../src/ports.js';

/** Stands in for the confirm channel (framed-channel.ts): records publishes, lets the test confirm them. */
class FakeChannel extends EventEmitter {
  readonly published: Array<{ exchange: string; routingKey: string; content: Buffer; callback: (error: Error | null) => void }> = [];
  writable = true;

  publish(message: OutboundMessage & ExchangeDestination, callback: (error: Error | null) => void): boolean {
    this.published.push({ exchange: message.exchange, routingKey: message.routingKey, content: message.content, callback });
    return this.writable;
  }

  confirm(index: number, error: Error | null = null): void {
    this.published[index]!.callback(error);
  }

  /** As amqplib: every unconfirmed callback fails with "channel closed", then 'close' is emitted. */
  close(unconfirmed: number[]): void {
    for (const index of unconfirmed) this.published[index]!.callback(new Error('channel closed'));
    this.emit('close');
  }
}

function message(routingKey: string, exchange = 'x', receivedAt = Date.now(), atMostOnce = false): OutboundMessage {
  return {
    exchange,
    routingKey,
    content: Buffer.from(routingKey),
    headers: {},
    properties: { persistent: !atMostOnce },
    messageId: routingKey,
    timestamp: 0,
    receivedAt,
    atMostOnce,
  };
}

/** An error as amqplib raises it when RabbitMQ closes a channel. */
function brokerError(code: number, text: string, operation = 'Channel closed by server: '): Error {
  const name = { 403: 'ACCESS-REFUSED', 404: 'NOT-FOUND', 406: 'PRECONDITION-FAILED' }[code];
  return Object.assign(new Error(`${operation}${code} (${name}) with message "${text}"`), { code });
}

/** A channel model whose check channel answers 404 for the exchanges in `missing`. */
function modelMissing(...missing: string[]): ChannelModel {
  const probe = new EventEmitter() as EventEmitter & { checkExchange(name: string): Promise<void> };
  probe.checkExchange = async (name) => {
    if (missing.includes(name)) throw brokerError(404, `NOT_FOUND - no exchange '${name}' in vhost '/'`, 'Operation failed: ExchangeDeclare; ');
  };
  return { createChannel: async () => probe } as unknown as ChannelModel;
}

function setup(options: { maxUnconfirmed?: number; publishTimeoutMs?: number; now?: () => number; model?: ChannelModel } = {}) {
  const refusals: string[] = [];
  const exchanges = new ExchangeDirectory({
    now: options.now,
    onRefused: (name, error, operation) => {
      refusals.push(`${operation} ${name} ${error.code}`);
      return Infinity;
    },
    onExists: () => {},
  });
  exchanges.attach(options.model ?? ({} as ChannelModel), ['x']);
  const publisher = new ConfirmPublisher({
    maxUnconfirmed: options.maxUnconfirmed ?? 2,
    publishTimeoutMs: options.publishTimeoutMs ?? 60_000,
    exchanges,
    logger: silentLogger(),
    now: options.now,
  });
  const results = new Map<string, PublishError | null>();
  const now = options.now ?? Date.now;
  const publish = (key: string, exchange = 'x', receivedAt = now()) =>
    publisher.publish(message(key, exchange, receivedAt), (error) => results.set(key, error));
  const publishQos0 = (key: string, exchange = 'x') => publisher.publish(message(key, exchange, now(), true), (error) => results.set(key, error));
  return { publisher, results, publish, publishQos0, exchanges, refusals };
}

const asChannel = (channel: FakeChannel): PublishChannel => channel;

test('ConfirmPublisher - never more than maxUnconfirmed awaiting confirm; the rest wait in order', () => {
  const { publisher, results, publish } = setup({ maxUnconfirmed: 2 });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  ['a', 'b', 'c', 'd'].forEach((key) => publish(key));
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['a', 'b']);
  assert.equal(publisher.pendingMessages, 4);
  channel.confirm(0);
  assert.equal(results.get('a'), null);
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['a', 'b', 'c']);
  channel.confirm(1);
  channel.confirm(2);
  channel.confirm(3);
  assert.deepEqual([...results.keys()], ['a', 'b', 'c', 'd']);
  assert.equal(publisher.pendingMessages, 0);
  assert.equal(publisher.pendingBytes, 0);
});

test('ConfirmPublisher - a full window refills once a quarter of it is confirmed, the waiting publishes together', () => {
  const { publisher, results, publish } = setup({ maxUnconfirmed: 8 });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  const keys = Array.from({ length: 12 }, (_, i) => `m${i}`);
  keys.forEach((key) => publish(key));
  const sent = () => channel.published.map((p) => p.routingKey);
  assert.deepEqual(sent(), keys.slice(0, 8));
  channel.confirm(0);
  assert.equal(results.get('m0'), null, 'settled at once');
  assert.deepEqual(sent(), keys.slice(0, 8), 'one place free: the rest still wait');
  channel.confirm(1);
  assert.deepEqual(sent(), keys.slice(0, 10), 'a quarter free (8 - 2 = 6 awaiting): both places filled at once');
  for (let i = 2; i < 12; i++) channel.confirm(i);
  assert.deepEqual(sent(), keys);
  assert.equal(results.size, 12);
  assert.equal(publisher.pendingMessages, 0);
  // Below a full window a publish goes at once.
  publish('late');
  assert.equal(sent().at(-1), 'late');
});

test('ConfirmPublisher - nothing is sent before a channel is attached', () => {
  const { publisher, results, publish } = setup();
  publish('early');
  assert.equal(results.has('early'), false, 'held, neither failed nor confirmed');
  assert.equal(publisher.pendingMessages, 1);
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['early']);
});

test('ConfirmPublisher - waits for drain when the channel buffer is full', () => {
  const { publisher, publish } = setup({ maxUnconfirmed: 100 });
  const channel = new FakeChannel();
  channel.writable = false;
  publisher.attach(asChannel(channel));
  publish('a');
  publish('b');
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['a']);
  channel.writable = true;
  channel.emit('drain');
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['a', 'b']);
});

test('ConfirmPublisher - a nack fails only that publish', () => {
  const { publisher, results, publish } = setup();
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('a');
  publish('b');
  channel.confirm(0, new Error('message nacked'));
  channel.confirm(1);
  assert.equal(results.get('a')?.code, 'BRIDGE_ERR_PUBLISH_NACKED');
  assert.equal(results.get('b'), null);
});

test('ConfirmPublisher - publishes unconfirmed when the channel closes go out again, in order, on the next channel', () => {
  const { publisher, results, publish } = setup({ maxUnconfirmed: 10 });
  const first = new FakeChannel();
  publisher.attach(asChannel(first));
  ['a', 'b', 'c'].forEach((key) => publish(key));
  first.confirm(0);
  first.close([1, 2]);
  publish('d');
  assert.equal(results.has('b'), false, 'not failed: it will be sent again');
  const second = new FakeChannel();
  publisher.attach(asChannel(second));
  assert.deepEqual(second.published.map((p) => p.routingKey), ['b', 'c', 'd']);
  second.confirm(0);
  second.confirm(1);
  second.confirm(2);
  assert.deepEqual([results.get('b'), results.get('c'), results.get('d')], [null, null, null]);
});

test(`ConfirmPublisher - a publish lost with ${MAX_CHANNEL_ATTEMPTS} channels is failed, not retried forever`, () => {
  const { publisher, results, publish } = setup();
  publish('a');
  for (let attempt = 1; attempt <= MAX_CHANNEL_ATTEMPTS; attempt++) {
    const channel = new FakeChannel();
    publisher.attach(asChannel(channel));
    assert.equal(channel.published.length, 1, `attempt ${attempt} sends it`);
    channel.close([0]);
  }
  assert.equal(results.get('a')?.code, 'BRIDGE_ERR_PUBLISH_ABANDONED');
  assert.equal(publisher.pendingMessages, 0);
});

test('ConfirmPublisher - a publish not confirmed within publishTimeoutMs fails; a later confirm changes nothing', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000;
  const { publisher, results, publish } = setup({ publishTimeoutMs: 20, now: () => now });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('slow');
  now += 19;
  t.mock.timers.tick(19);
  assert.equal(results.has('slow'), false, 'not before its deadline');
  now += 1;
  t.mock.timers.tick(1);
  assert.equal(results.get('slow')?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
  assert.equal(publisher.pendingMessages, 0);
  channel.confirm(0);
  assert.equal(results.get('slow')?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
});

/** Lets the publisher's exchange checks (promises) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('ConfirmPublisher - a publish to an exchange found missing is held aside, never acknowledged, and times out; the ones behind it go out', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000;
  const { publisher, results, publish, refusals } = setup({ model: modelMissing('nowhere'), publishTimeoutMs: 50, now: () => now, maxUnconfirmed: 10 });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('held', 'nowhere');
  publish('kept', 'x');
  await settle();
  publish('held too', 'nowhere');
  publish('kept too', 'x');
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['kept', 'kept too'], 'not written: RabbitMQ would close the channel');
  assert.deepEqual(refusals, ['check nowhere 404'], 'checked once');
  channel.confirm(0);
  channel.confirm(1);
  assert.deepEqual([...results.entries()], [['kept', null], ['kept too', null]]);
  assert.equal(publisher.pendingMessages, 2, 'the held ones are still pending');
  now += 50;
  t.mock.timers.tick(50);
  const timedOut = results.get('held');
  assert.equal(timedOut?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
  assert.match(timedOut.message, /RabbitMQ refuses exchange "nowhere" \(404 NOT_FOUND - no exchange 'nowhere'/);
  assert.equal(results.get('held too')?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
  assert.equal(publisher.pendingMessages, 0);
  publisher.releaseAvailable();
  assert.equal(channel.published.length, 2, 'a held publish that timed out is gone for good');
});

test('ConfirmPublisher - a QoS 0 publish to a refused exchange fails at once with BRIDGE_ERR_EXCHANGE_REFUSED', async () => {
  const { publisher, results, publishQos0, exchanges } = setup();
  exchanges.refuse('clash', { kind: 'configuration', code: 406, text: "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'clash' in vhost '/'" });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publishQos0('dropped', 'clash');
  publishQos0('sent', 'x');
  const dropped = results.get('dropped');
  assert.equal(dropped?.code, 'BRIDGE_ERR_EXCHANGE_REFUSED');
  assert.match(dropped.message, /inequivalent arg 'durable'/);
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['sent']);
  assert.equal(publisher.pendingMessages, 1);
});

test('ConfirmPublisher - once a refused exchange is accepted, its held publishes go out in order, before later ones to it', () => {
  const { publisher, results, publish, exchanges } = setup({ maxUnconfirmed: 10 });
  exchanges.refuse('clash', { kind: 'configuration', code: 406, text: 'PRECONDITION_FAILED' });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('c1', 'clash');
  publish('x1', 'x');
  publish('c2', 'clash');
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['x1']);
  publisher.releaseAvailable();
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['x1'], 'still refused: still held');
  exchanges.declared(['clash']);
  publish('c3', 'clash');
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['x1', 'c1', 'c2', 'c3'], 'a publish seeing it accepted lets the older ones go first');
  channel.confirm(1);
  channel.confirm(2);
  channel.confirm(3);
  assert.deepEqual([results.get('c1'), results.get('c2'), results.get('c3')], [null, null, null]);
});

test('ConfirmPublisher - releaseAvailable sends what was held for an exchange accepted meanwhile', () => {
  const { publisher, results, publish, exchanges } = setup({ maxUnconfirmed: 10 });
  exchanges.refuse('clash', { kind: 'configuration', code: 404, text: 'NOT_FOUND' });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('c1', 'clash');
  publish('c2', 'clash');
  exchanges.declared(['clash']);
  publisher.releaseAvailable();
  assert.deepEqual(channel.published.map((p) => p.routingKey), ['c1', 'c2']);
  channel.confirm(0);
  assert.equal(results.get('c1'), null);
});

test('ConfirmPublisher - RabbitMQ closing the channel over a publish to a missing exchange: that exchange is refused, the others\' publishes go out again', () => {
  const { publisher, results, publish, exchanges, refusals } = setup({ maxUnconfirmed: 10 });
  exchanges.declared(['gone']); // declared, then deleted on RabbitMQ behind the bridge's back
  const first = new FakeChannel();
  publisher.attach(asChannel(first));
  publish('a', 'x');
  publish('g', 'gone');
  publish('b', 'x');
  first.emit('error', brokerError(404, "NOT_FOUND - no exchange 'gone' in vhost '/'"));
  first.close([0, 1, 2]);
  assert.deepEqual(refusals, ['publish gone 404']);
  assert.equal(exchanges.status('gone'), 'refused');
  const second = new FakeChannel();
  publisher.attach(asChannel(second));
  assert.deepEqual(second.published.map((p) => p.routingKey), ['a', 'b'], 'the other exchange\'s publishes, again; the refused one\'s held');
  assert.equal(results.size, 0, 'nothing settled: a and b await their confirm, g waits for its exchange');
});

test('ConfirmPublisher - close fails the publishes held for a refused exchange at once, and waits only for those in flight', async () => {
  const { publisher, results, publish, exchanges } = setup();
  exchanges.refuse('clash', { kind: 'configuration', code: 406, text: 'PRECONDITION_FAILED' });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('held', 'clash');
  publish('sent', 'x');
  const closing = publisher.close(60_000);
  assert.equal(results.get('held')?.code, 'BRIDGE_ERR_PUBLISHER_CLOSED');
  assert.equal(results.has('sent'), false, 'still waiting for its confirm');
  channel.confirm(0);
  await closing;
  assert.equal(results.get('sent'), null);
});

test('ConfirmPublisher - close waits for pending confirms, then fails what is left', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { publisher, results, publish } = setup();
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('a');
  publish('b');
  const closing = publisher.close(30);
  channel.confirm(0);
  t.mock.timers.tick(29);
  assert.equal(results.has('b'), false, 'still waiting for its confirm');
  t.mock.timers.tick(1);
  await closing;
  assert.equal(results.get('a'), null);
  assert.equal(results.get('b')?.code, 'BRIDGE_ERR_PUBLISHER_CLOSED');
  publish('late');
  assert.equal(results.get('late')?.code, 'BRIDGE_ERR_PUBLISHER_CLOSED');
});

test('ConfirmPublisher - a publish that arrived earlier but came later times out at its own deadline, not at the one before it', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000;
  const { publisher, results, publish } = setup({ publishTimeoutMs: 20, now: () => now, maxUnconfirmed: 10 });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('newer', 'x', 1_000); // due at 1020
  publish('older', 'x', 990); // due at 1010: its client's turn came after the newer one's
  publish('oldest', 'x', 985); // due at 1005
  now += 5;
  t.mock.timers.tick(5);
  assert.deepEqual([...results.keys()], ['oldest']);
  now += 5;
  t.mock.timers.tick(5);
  assert.deepEqual([...results.keys()], ['oldest', 'older']);
  assert.equal(results.get('older')?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
  now += 9;
  t.mock.timers.tick(9);
  assert.equal(results.has('newer'), false, 'not before its deadline');
  channel.confirm(0);
  assert.equal(results.get('newer'), null);
  assert.equal(publisher.pendingMessages, 0);
});

test('ConfirmPublisher - publishes settled out of order leave the timeouts of the others exact', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 1_000;
  const { publisher, results, publish } = setup({ publishTimeoutMs: 20, now: () => now, maxUnconfirmed: 10 });
  const channel = new FakeChannel();
  publisher.attach(asChannel(channel));
  publish('a', 'x', 1_000);
  publish('b', 'x', 990);
  publish('c', 'x', 1_002);
  channel.confirm(1); // b, the earliest deadline, is confirmed
  now += 19;
  t.mock.timers.tick(19);
  assert.deepEqual([...results.entries()], [['b', null]]);
  now += 1;
  t.mock.timers.tick(1);
  assert.equal(results.get('a')?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
  assert.equal(results.has('c'), false);
  now += 2;
  t.mock.timers.tick(2);
  assert.equal(results.get('c')?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
  assert.equal(publisher.pendingMessages, 0);
});
