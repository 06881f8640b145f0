import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PublishError } from '../../../src/errors.js';
import { FlowController } from '../../../src/flow/flow-controller.js';
import { UplinkResolver } from '../../../src/mapping/uplink.js';
import type { DevicePublish } from '../../../src/mqtt/types.js';
import { silentLogger } from '../../../src/observability/logger.js';
import { BridgeMetrics } from '../../../src/observability/metrics.js';
import { UplinkPipeline } from '../../../src/pipeline/uplink.js';
import type { MessagePublisher, OutboundMessage, PublishCallback } from '../../../src/ports.js';

const NOW = 1_700_000_000_123;

/** Records what is published; the test settles each publish. */
class FakePublisher implements MessagePublisher {
  readonly published: Array<{ message: OutboundMessage; done: PublishCallback }> = [];
  readonly pendingMessages = 0;
  readonly pendingBytes = 0;
  publish(message: OutboundMessage, done: PublishCallback): void {
    this.published.push({ message, done });
  }
  async close(): Promise<void> {}
}

function setup(flowState: 'connected' | 'disconnected') {
  let now = NOW;
  const metrics = new BridgeMetrics();
  const flow = new FlowController({
    maxPendingMessages: 100,
    maxPendingBytes: 100_000,
    maxInflightPerClient: 10,
    qos0Overflow: 'drop',
    publishTimeoutMs: 30,
    logger: silentLogger(),
    now: () => now,
  });
  if (flowState === 'connected') flow.setBrokerState('connected');
  const publisher = new FakePublisher();
  let ids = 0;
  const resolver = new UplinkResolver([{ name: 'all', topic: '#', exchange: 'ex', routingKey: '{#}' }]);
  const pipeline = new UplinkPipeline({
    resolver: () => resolver,
    publisher,
    flow,
    metrics,
    logger: silentLogger(),
    newMessageId: () => `id-${++ids}`,
    now: () => now,
  });
  const results: Array<Error | null> = [];
  const send = (qos: 0 | 1 | 2, topic = 'a/b') => {
    const publish: DevicePublish = { topic, payload: Buffer.from('hi'), qos, retain: false, clientId: 'dev', username: undefined };
    pipeline.onPublish(publish, (error) => results.push(error));
  };
  const advance = (ms: number) => {
    now += ms;
  };
  return { metrics, flow, publisher, results, send, advance, messageIds: () => ids };
}

async function counted(counter: BridgeMetrics['uplinkFailed']  ): Promise<Record<string, number>> {
  const { values } = await counter.get();
  return Object.fromEntries(values.map(({ labels, value }) => [String(labels.reason), value]));
}

test('UplinkPipeline - an admitted publish goes on as one AMQP message with the id, timestamp and arrival time of the publish', () => {
  const { publisher, send, results } = setup('connected');
  send(1);
  assert.equal(publisher.published.length, 1);
  const { message } = publisher.published[0]!;
  assert.equal(message.exchange, 'ex');
  assert.equal(message.routingKey, 'a.b');
  assert.equal(message.messageId, 'id-1');
  assert.equal(message.timestamp, Math.floor(NOW / 1000));
  assert.equal(message.receivedAt, NOW);
  assert.deepEqual(results, [], 'QoS 1 waits for the confirm');
  publisher.published[0]!.done(null);
  assert.deepEqual(results, [null]);
});

test('UplinkPipeline - a QoS 0 the flow drops is acknowledged and counted, and no AMQP message is built for it', async () => {
  const { metrics, publisher, send, results, messageIds } = setup('disconnected');
  send(0);
  assert.deepEqual(results, [null]);
  assert.deepEqual(await counted(metrics.uplinkDropped), { qos0_overflow: 1 });
  assert.equal(publisher.published.length, 0);
  assert.equal(messageIds(), 0, 'no message id was drawn');
});

test('UplinkPipeline - a QoS 1 refused by the flow fails as a publish that failed in the publisher does, with the same reasons', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { metrics, flow, publisher, send, results, advance } = setup('disconnected');
  send(1);
  advance(30);
  t.mock.timers.tick(30); // waited for admission past publishTimeoutMs
  send(2);
  flow.close();
  assert.deepEqual(
    results.map((error) => (error as PublishError).code),
    ['BRIDGE_ERR_PUBLISH_TIMEOUT', 'BRIDGE_ERR_PUBLISHER_CLOSED'],
  );
  assert.deepEqual(await counted(metrics.uplinkFailed), { timeout: 1, shutdown: 1 });

  const connected = setup('connected');
  connected.send(1);
  connected.send(1);
  connected.publisher.published[0]!.done(new PublishError('BRIDGE_ERR_PUBLISH_TIMEOUT', 'not confirmed in time'));
  connected.publisher.published[1]!.done(new PublishError('BRIDGE_ERR_PUBLISHER_CLOSED', 'shutting down'));
  assert.deepEqual(
    connected.results.map((error) => (error as PublishError).code),
    ['BRIDGE_ERR_PUBLISH_TIMEOUT', 'BRIDGE_ERR_PUBLISHER_CLOSED'],
  );
  assert.deepEqual(await counted(connected.metrics.uplinkFailed), { timeout: 1, shutdown: 1 });
  assert.equal(publisher.published.length, 0);
});
