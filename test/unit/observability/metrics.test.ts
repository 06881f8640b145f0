import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregatorRegistry } from 'prom-client';
import { BridgeMetrics, countFleetWideOnce } from '../../../src/observability/metrics.js';

/** A worker's metrics as it sends them to the primary: its sessions and the fleet-wide retained usage it reads from Redis. */
async function workerMetrics(connected: number, offline: number, retainedMessages: number) {
  const metrics = new BridgeMetrics();
  metrics.uplinkUnmatched.inc(connected);
  metrics.observe({
    flowState: () => 'open',
    flowPendingMessages: () => 0,
    flowPendingBytes: () => 0,
    flowWaiting: () => 0,
    connections: () => ({ tcp: connected }),
    bufferedBytes: () => ({ unauthenticated: 0, authenticated: 0 }),
    amqpConnected: () => true,
    amqpRefused: () => [],
    sessions: () => ({ connected, offline }),
    retained: () => ({ messages: retainedMessages, bytes: retainedMessages * 10 }),
    sharedState: () => ({ ready: true, cluster: null }),
  });
  return metrics.registry.getMetricsAsJSON();
}

test('metrics - what every worker reads alike from Redis counts once in the primary; the rest adds up', async () => {
  const perWorker = [await workerMetrics(3, 5, 7), await workerMetrics(4, 5, 7)];
  const aggregated = AggregatorRegistry.aggregate(countFleetWideOnce(perWorker));
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const { values } = await aggregated.getSingleMetric(`mqtt_amqp_bridge_${name}`)!.get();
    return values.filter((entry) => Object.entries(labels).every(([key, wanted]) => String(entry.labels[key]) === wanted)).reduce((sum, entry) => sum + entry.value, 0);
  };
  assert.equal(await value('mqtt_sessions', { state: 'connected' }), 7, 'connections are per worker: added up');
  assert.equal(await value('mqtt_sessions', { state: 'offline' }), 5, 'offline sessions are fleet-wide: once');
  assert.equal(await value('retained_messages'), 7);
  assert.equal(await value('retained_bytes'), 70);
  assert.equal(await value('mqtt_connections', { listener: 'tcp' }), 7);
  assert.equal(await value('uplink_unmatched_total'), 7);
  assert.equal(perWorker[1]!.find((metric) => metric.name === 'mqtt_amqp_bridge_retained_messages')!.values[0]!.value, 7, 'the workers\' own readings are left as they were');
});
