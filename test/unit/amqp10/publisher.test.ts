import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Amqp10Publisher } from '../../../src/amqp10/publisher.js';
import type { PublishError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/observability/logger.js';
import type { OutboundMessage } from '../../../src/ports.js';

const message = (extra: Partial<OutboundMessage> = {}): OutboundMessage =>
  ({
    address: 'q',
    subject: undefined,
    content: Buffer.from('abc'),
    headers: {},
    properties: { persistent: true },
    messageId: 'm',
    timestamp: 0,
    receivedAt: Date.now(),
    atMostOnce: false,
    ...extra,
  }) as OutboundMessage;

// The publisher's timers do not hold the process open (unref): this one does, while the tests wait on them.
const keepAlive = setInterval(() => {}, 1_000);
after(() => clearInterval(keepAlive));

const publisher = (publishTimeoutMs = 60_000) => new Amqp10Publisher({ maxUnsettled: 10, publishTimeoutMs, logger: silentLogger() });

test('Amqp10Publisher - without a connection a publish waits, counted as pending, and fails after the publish timeout', async () => {
  const subject = publisher(50);
  const outcome = new Promise<PublishError | null>((resolve) => subject.publish(message(), resolve));
  assert.equal(subject.pendingMessages, 1);
  assert.equal(subject.pendingBytes, 3);
  assert.equal((await outcome)?.code, 'BRIDGE_ERR_PUBLISH_TIMEOUT');
  assert.equal(subject.pendingMessages, 0);
  assert.equal(subject.unsettled, 0);
  await subject.close(0);
});

test('Amqp10Publisher - close waits up to its timeout, then fails what is pending; a closed publisher refuses', async () => {
  const subject = publisher();
  const outcome = new Promise<PublishError | null>((resolve) => subject.publish(message(), resolve));
  await subject.close(20);
  assert.equal((await outcome)?.code, 'BRIDGE_ERR_PUBLISHER_CLOSED');
  const refused = await new Promise<PublishError | null>((resolve) => subject.publish(message(), resolve));
  assert.equal(refused?.code, 'BRIDGE_ERR_PUBLISHER_CLOSED');
});

test('Amqp10Publisher - a message to an exchange is a bug: it never reaches the AMQP 1.0 publisher', async () => {
  const subject = publisher();
  assert.throws(() => subject.publish(message({ exchange: 'x', routingKey: 'k', address: undefined, subject: undefined }), () => {}), {
    code: 'BRIDGE_ERR_INTERNAL',
  });
  await subject.close(0);
});

test('Amqp10Publisher - detached with nothing in flight, it stays quiet', async () => {
  const subject = publisher();
  subject.detach();
  assert.equal(subject.unsettled, 0);
  await subject.close(0);
});
