import assert from 'node:assert/strict';
import { test } from 'node:test';
import rhea from 'rhea';
import { fromAmqp10Message, toAmqp10Message, type AddressMessage } from '../../../src/amqp10/message.js';
import { bodyBytes } from '../../../src/amqp10/rhea-internals.js';

const message = (extra: Partial<AddressMessage> = {}): AddressMessage => ({
  address: 'q',
  subject: 's.1',
  content: Buffer.from([0, 1, 255]),
  headers: { 'x-mqtt-topic': 's/1', 'x-mqtt-qos': 1 },
  properties: { persistent: true },
  messageId: 'id-1',
  timestamp: 1_700_000_000,
  receivedAt: 1_700_000_000_123,
  atMostOnce: false,
  ...extra,
});

test('amqp10 message - an uplink publish: one data section, subject, application-properties, message-id, creation-time, durable', () => {
  const amqp = rhea.message.decode(rhea.message.encode(toAmqp10Message(message())));
  assert.deepEqual(bodyBytes(amqp.body), Buffer.from([0, 1, 255]));
  assert.equal(amqp.subject, 's.1');
  assert.deepEqual(amqp.application_properties, { 'x-mqtt-topic': 's/1', 'x-mqtt-qos': 1 });
  assert.equal(amqp.message_id, 'id-1');
  assert.equal((amqp.creation_time as Date).getTime(), 1_700_000_000_123);
  assert.equal(amqp.durable, true);
});

test('amqp10 message - the rule\'s properties; no subject and not durable for QoS 0', () => {
  const amqp = toAmqp10Message(
    message({
      subject: undefined,
      properties: { persistent: false, contentType: 'a/b', contentEncoding: 'gzip', correlationId: 'c', replyTo: 'r', priority: 3, expiration: '5000' },
    }),
  );
  assert.equal(amqp.subject, undefined);
  assert.equal(amqp.durable, false);
  assert.deepEqual(
    [amqp.content_type, amqp.content_encoding, amqp.correlation_id, amqp.reply_to, amqp.priority, amqp.ttl],
    ['a/b', 'gzip', 'c', 'r', 3, 5000],
  );
});

test('amqp10 message - a received message: address, subject (none when absent or not a string), bytes, application-properties', () => {
  assert.deepEqual(fromAmqp10Message('q', { subject: 'a.b', body: 'x', application_properties: { h: 'v' } }), {
    address: 'q',
    subject: 'a.b',
    content: Buffer.from('x'),
    headers: { h: 'v' },
  });
  assert.equal(fromAmqp10Message('q', { body: 'x' })?.subject, undefined);
  assert.equal(fromAmqp10Message('q', { body: { map: true } }), null);
});
