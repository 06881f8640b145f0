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

test('metrics - uplink messages and bytes forwarded show by rule and QoS whichever way they are read, counted once each', async () => {
  const metrics = new BridgeMetrics();
  metrics.uplinkForwarded('telemetry', 1, 64);
  metrics.uplinkForwarded('telemetry', 1, 36);
  metrics.uplinkForwarded('telemetry', 0, 0);
  metrics.uplinkForwarded('alarms', 2, 5);
  assert.equal(await metrics.value('mqtt_amqp_bridge_uplink_messages_total', { rule: 'telemetry', qos: '1' }), 2);
  assert.equal(await metrics.value('mqtt_amqp_bridge_uplink_bytes_total', { rule: 'telemetry', qos: '1' }), 100);
  // An empty payload is a message of 0 bytes: its series exists at 0.
  assert.equal(await metrics.value('mqtt_amqp_bridge_uplink_messages_total', { rule: 'telemetry', qos: '0' }), 1);
  const text = await metrics.registry.metrics();
  assert.match(text, /^mqtt_amqp_bridge_uplink_bytes_total\{rule="telemetry",qos="0"\} 0$/m);
  assert.match(text, /^mqtt_amqp_bridge_uplink_messages_total\{rule="alarms",qos="2"\} 1$/m);
  assert.match(text, /^mqtt_amqp_bridge_uplink_bytes_total\{rule="alarms",qos="2"\} 5$/m);
  // Read again, and after more: nothing counted twice.
  metrics.uplinkForwarded('alarms', 2, 7);
  assert.equal(await metrics.value('mqtt_amqp_bridge_uplink_messages_total', { rule: 'alarms' }), 2);
  assert.equal(await metrics.value('mqtt_amqp_bridge_uplink_bytes_total', { rule: 'alarms' }), 12);
  assert.equal(await metrics.value('mqtt_amqp_bridge_uplink_messages_total'), 5);
  const json = await metrics.registry.getMetricsAsJSON();
  const bytes = json.find((metric) => metric.name === 'mqtt_amqp_bridge_uplink_bytes_total')!;
  assert.equal(bytes.values.reduce((sum, entry) => sum + entry.value, 0), 112);
  assert.deepEqual((await metrics.totals()).uplink_messages, { 'telemetry/1': 2, 'telemetry/0': 1, 'alarms/2': 2 });
});
