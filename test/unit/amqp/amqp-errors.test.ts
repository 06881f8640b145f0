import assert from 'node:assert/strict';
import { test } from 'node:test';
import amqplib from 'amqplib';
import { classifyAmqpError, inequivalentArgument, refusedResource } from '../../../src/amqp/amqp-errors.js';

/** An error as amqplib raises it when RabbitMQ closes a channel or the connection (see amqplib-internals.test.ts). */
const closedBy = (code: number, text: string) => Object.assign(new Error(`Operation failed: ExchangeDeclare; ${code} (X) with message "${text}"`), { code });

// The reply texts below are RabbitMQ's own, as a real RabbitMQ sends them (test/integration/broker-conflicts.test.ts
// checks the same against the running one).
const DURABLE = "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'telemetry' in vhost '/': received 'true' but current is 'false'";
const TYPE = "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'telemetry' in vhost '/': received 'topic' but current is 'fanout'";
const DLX = "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'bridge.downlink.cmd' in vhost '/': received the value 'dlx' of type 'longstr' but current is none";
const NO_QUEUE = "NOT_FOUND - no queue 'commands' in vhost '/'";
const NO_EXCHANGE = "NOT_FOUND - no exchange 'telemetry' in vhost 'iot'";
const ACCESS = "ACCESS_REFUSED - access to exchange 'telemetry' in vhost '/' refused for user 'bridge'";
const RESERVED = "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'";
const LOCKED = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'commands' in vhost '/'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.";

test('classifyAmqpError - 402 to 406 are configuration errors, with the reply code and text', () => {
  for (const [code, text] of [[403, ACCESS], [404, NO_QUEUE], [405, LOCKED], [406, DURABLE], [402, 'INVALID_PATH']] as const) {
    assert.deepEqual(classifyAmqpError(closedBy(code, text)), { kind: 'configuration', code, text });
  }
});

test('classifyAmqpError - frame, syntax, command, channel and unexpected-frame errors, 530 and 540 are protocol errors', () => {
  for (const code of [501, 502, 503, 504, 505, 530, 540]) assert.equal(classifyAmqpError(closedBy(code, 'X')).kind, 'protocol', String(code));
});

test('classifyAmqpError - socket errors, heartbeat timeouts, closing channels, 320, 506 and 541 are transient', () => {
  for (const code of [320, 506, 541]) assert.equal(classifyAmqpError(closedBy(code, 'X')).kind, 'transient', String(code));
  assert.deepEqual(classifyAmqpError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), { kind: 'transient', code: null, text: 'read ECONNRESET' });
  assert.equal(classifyAmqpError(new Error('Heartbeat timeout')).kind, 'transient');
  assert.equal(classifyAmqpError(new amqplib.IllegalOperationError('Channel closed', '')).kind, 'transient');
  assert.equal(classifyAmqpError('a string').text, 'a string');
});

test("refusedResource - the exchange or queue RabbitMQ's reply names", () => {
  assert.deepEqual(refusedResource(DURABLE), { kind: 'exchange', name: 'telemetry' });
  assert.deepEqual(refusedResource(DLX), { kind: 'queue', name: 'bridge.downlink.cmd' });
  assert.deepEqual(refusedResource(NO_QUEUE), { kind: 'queue', name: 'commands' });
  assert.deepEqual(refusedResource(NO_EXCHANGE), { kind: 'exchange', name: 'telemetry' });
  assert.deepEqual(refusedResource(ACCESS), { kind: 'exchange', name: 'telemetry' });
  assert.deepEqual(refusedResource(RESERVED), { kind: 'exchange', name: 'amq.mine' });
  assert.deepEqual(refusedResource(LOCKED), { kind: 'queue', name: 'commands' });
  assert.deepEqual(refusedResource("NOT_FOUND - no exchange 'it''s' in vhost '/'"), { kind: 'exchange', name: "it''s" });
  assert.equal(refusedResource('PRECONDITION_FAILED - unknown delivery tag 7'), null);
});

test('inequivalentArgument - the argument that differs, what the bridge declared and what RabbitMQ has', () => {
  assert.deepEqual(inequivalentArgument(DURABLE), { name: 'durable', declared: 'true', current: 'false' });
  assert.deepEqual(inequivalentArgument(TYPE), { name: 'type', declared: 'topic', current: 'fanout' });
  assert.deepEqual(inequivalentArgument(DLX), { name: 'x-dead-letter-exchange', declared: 'dlx', current: 'none' });
  assert.equal(inequivalentArgument(NO_QUEUE), null);
});
