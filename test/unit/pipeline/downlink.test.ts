import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileDownlinkRule, DownlinkRuleResolver } from '../../../src/mapping/downlink.js';
import { RetainedLimitError } from '../../../src/errors.js';
import { BridgeMetrics } from '../../../src/observability/metrics.js';
import { DownlinkPipeline } from '../../../src/pipeline/downlink.js';
import type { DeliveryOutcome, DevicePublishRequest, InboundDelivery } from '../../../src/ports.js';
import { captureLogs } from '../../helpers/log-capture.js';

const REQUEUE_DELAY_MS = 30;

const commands = new DownlinkRuleResolver(
  compileDownlinkRule({ name: 'commands', exchange: 'commands', routingKey: '{deviceId}.#', topic: 'devices/{deviceId}/commands/{#}', qos: 1 }),
);

function delivery(routingKey: string, headers?: Record<string, unknown>): InboundDelivery {
  return { exchange: 'commands', routingKey, content: Buffer.from('payload'), headers };
}

/** A pipeline whose MQTT side answers each publish with `answer`, and what became of each delivery. */
function pipeline(answer: (request: DevicePublishRequest) => Error | null) {
  const metrics = new BridgeMetrics({ processMetrics: false });
  const published: DevicePublishRequest[] = [];
  const { logger, lines } = captureLogs('warn');
  const downlink = new DownlinkPipeline({
    devices: {
      publishToDevices(request, done) {
        published.push(request);
        done(answer(request));
      },
    },
    maxTopicLevels: 100,
    metrics,
    logger,
    requeueDelayMs: REQUEUE_DELAY_MS,
  });
  const deliver = (item: InboundDelivery) =>
    new Promise<{ outcome: DeliveryOutcome; afterMs: number }>((resolve) => {
      const start = Date.now();
      downlink.onDelivery(commands, item, (outcome) => resolve({ outcome, afterMs: Date.now() - start }));
    });
  return { metrics, published, lines, deliver };
}

test('DownlinkPipeline - a delivery the MQTT side takes is published on the rendered topic, acknowledged and counted', async () => {
  const { metrics, published, deliver } = pipeline(() => null);
  assert.equal((await deliver(delivery('d1.reboot'))).outcome, 'ack');
  assert.deepEqual(published, [{ topic: 'devices/d1/commands/reboot', payload: Buffer.from('payload'), qos: 1, retain: false }]);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_messages_total', { rule: 'commands', qos: '1' }), 1);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_bytes_total', { rule: 'commands', qos: '1' }), 7);
});

test('DownlinkPipeline - the x-mqtt-retain header makes the publish retained', async () => {
  const { published, deliver } = pipeline(() => null);
  await deliver(delivery('d1.config', { 'x-mqtt-retain': true }));
  assert.equal(published[0]!.retain, true);
});

test('DownlinkPipeline - a failure of the MQTT side (persistence, shutting down) requeues the delivery after a pause, and is counted', async () => {
  const { metrics, published, lines, deliver } = pipeline(() => new Error('the MQTT server is not running'));
  const { outcome, afterMs } = await deliver(delivery('d1.reboot'));
  assert.equal(outcome, 'requeue');
  assert.ok(afterMs >= REQUEUE_DELAY_MS - 5, `held ${afterMs} ms before the requeue, not handed straight back`);
  assert.equal(published.length, 1);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_requeued_total', { rule: 'commands' }), 1);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'commands', reason: 'mqtt_refused' }), 0);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_messages_total', { rule: 'commands', qos: '1' }), 0);
  assert.equal(lines[0]!.msg, 'AMQP delivery requeued: the MQTT side could not take it now');
  assert.equal((lines[0]!.err as { message: string }).message, 'the MQTT server is not running');
});

test('DownlinkPipeline - a topic with more levels than the MQTT server takes is dead-lettered without trying (it never succeeds)', async () => {
  const { metrics, published, deliver } = pipeline(() => null);
  const key = ['d1', ...Array.from({ length: 98 }, (_, i) => `w${i}`)].join('.'); // devices/d1/commands + 98 = 101 levels
  assert.equal((await deliver(delivery(key))).outcome, 'dead-letter');
  assert.equal(published.length, 0);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'commands', reason: 'mqtt_refused' }), 1);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_requeued_total', { rule: 'commands' }), 0);
  const atLimit = ['d1', ...Array.from({ length: 97 }, (_, i) => `w${i}`)].join('.'); // 100 levels
  assert.equal((await deliver(delivery(atLimit))).outcome, 'ack');
});

test('DownlinkPipeline - a routing key the rule does not match, or a topic it cannot render, is dead-lettered and counted by reason', async () => {
  const byHeader = new DownlinkRuleResolver(compileDownlinkRule({ name: 'by-header', exchange: 'x', routingKey: 'hdr.*', topic: 'to/{headers.x-target}', qos: 1 }));
  const metrics = new BridgeMetrics({ processMetrics: false });
  const downlink = new DownlinkPipeline({ devices: { publishToDevices: (_request, done) => done(null) }, maxTopicLevels: 100, metrics, logger: captureLogs().logger });
  const outcomes: DeliveryOutcome[] = [];
  downlink.onDelivery(byHeader, { exchange: 'x', routingKey: 'other.a', content: Buffer.alloc(0), headers: undefined }, (outcome) => outcomes.push(outcome));
  downlink.onDelivery(byHeader, { exchange: 'x', routingKey: 'hdr.a', content: Buffer.alloc(0), headers: undefined }, (outcome) => outcomes.push(outcome));
  assert.deepEqual(outcomes, ['dead-letter', 'dead-letter']);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'by-header', reason: 'unmatched' }), 1);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'by-header', reason: 'render_failed' }), 1);
});

test('DownlinkPipeline - a retained message the retained limits refuse is dead-lettered at once (never requeued), and counted', async () => {
  const { metrics, published, lines, deliver } = pipeline((request) => (request.retain ? new RetainedLimitError('retained_messages', request.topic) : null));
  const { outcome, afterMs } = await deliver(delivery('d1.config', { 'x-mqtt-retain': true }));
  assert.equal(outcome, 'dead-letter');
  assert.ok(afterMs < REQUEUE_DELAY_MS, 'not held as a requeue is');
  assert.equal(published.length, 1);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'commands', reason: 'retained_limit' }), 1);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_requeued_total', { rule: 'commands' }), 0);
  assert.equal(await metrics.value('mqtt_amqp_bridge_downlink_messages_total', { rule: 'commands', qos: '1' }), 0);
  assert.match(String(lines[0]!.err), /retained message on "devices\/d1\/commands\/config" refused: it would pass the retained_messages limit/);
  assert.equal((await deliver(delivery('d1.reboot'))).outcome, 'ack', 'a message that is not retained still goes');
});
