import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import amqplib from 'amqplib';
import { AMQP_URL, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, type TestBridge, transientExchange } from '../helpers/bridge.js';
import { closeConnectionsNamed } from '../helpers/rabbitmqctl.js';

const exchange = uniqueName('http');
const queueName = uniqueName('http-down');
const connectionName = uniqueName('bridge-http');
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    amqp: {
      connectionName,
      exchanges: [transientExchange(exchange)],
      reconnect: { initialDelayMs: 1_500, maxDelayMs: 1_500, jitter: 0 },
    },
    uplink: [{ name: 'sensors', topic: 'sensors/{id}', exchange, routingKey: 'sensors.{id}' }],
    downlink: [{ name: 'cmds', exchange, routingKey: 'cmd.{id}', topic: 'cmd/{id}', qos: 1, queueName }],
  });
  consumer = await TestConsumer.create([{ exchange, key: 'sensors.#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await withChannel(async (channel) => {
    await channel.deleteQueue(queueName);
    await channel.deleteExchange(exchange);
  }).catch(() => {});
});

const endpoint = (path: string) => fetch(`http://127.0.0.1:${bridge.bridge.http!.port}${path}`);

/** The samples of a Prometheus text exposition: `name{labels}` -> value. */
async function scrape(): Promise<Map<string, number>> {
  const response = await endpoint('/metrics');
  assert.equal(response.status, 200);
  assert.match(String(response.headers.get('content-type')), /^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

const delta = (before: Map<string, number>, after: Map<string, number>, sample: string) => (after.get(sample) ?? 0) - (before.get(sample) ?? 0);

test('http - /metrics counters move by exactly the traffic sent', async () => {
  const before = await scrape();
  const device = await connectClient(bridge.url('tcp'));
  const dashboard = await connectClient(bridge.url('ws'));
  const received: string[] = [];
  dashboard.on('message', (topic) => received.push(topic));
  try {
    await dashboard.subscribeAsync('cmd/#', { qos: 1 });
    await device.publishAsync('sensors/a', 'abcd', { qos: 1 });
    await device.publishAsync('sensors/b', '123456', { qos: 1 });
    await device.publishAsync('sensors/c', 'xy', { qos: 0 });
    await device.publishAsync('elsewhere', 'unmatched', { qos: 1 });
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.publish(exchange, 'cmd.1', Buffer.from('go'));
    channel.publish(exchange, 'cmd.2', Buffer.from('stop!'));
    await channel.waitForConfirms();
    await connection.close();
    await consumer.waitForCount(3);
    await waitFor(() => received.length === 2, 'two commands at the dashboard');
    const during = await scrape();
    assert.equal(during.get('mqtt_amqp_bridge_mqtt_connections{listener="tcp"}'), 1);
    assert.equal(during.get('mqtt_amqp_bridge_mqtt_connections{listener="ws"}'), 1);
    const after = await scrape();
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_uplink_messages_total{rule="sensors",qos="1"}'), 2);
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_uplink_messages_total{rule="sensors",qos="0"}'), 1);
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_uplink_bytes_total{rule="sensors",qos="1"}'), 10);
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_uplink_bytes_total{rule="sensors",qos="0"}'), 2);
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_uplink_unmatched_total'), 1);
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_downlink_messages_total{rule="cmds",qos="1"}'), 2);
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_downlink_bytes_total{rule="cmds",qos="1"}'), 7);
    assert.equal(delta(before, after, 'mqtt_amqp_bridge_amqp_confirm_latency_seconds_count'), 3);
    assert.equal(after.get('mqtt_amqp_bridge_flow_state{state="open"}'), 1);
    assert.equal(after.get('mqtt_amqp_bridge_amqp_connected'), 1);
    assert.ok((after.get('process_cpu_user_seconds_total') ?? -1) >= 0, 'the default process metrics are there');
    // No client ids or topics as labels.
    for (const sample of after.keys()) assert.doesNotMatch(sample, /sensors\/a|clientId|mqttjs_/);
  } finally {
    await device.endAsync();
    await dashboard.endAsync();
  }
});

test('http - /healthz is 200 while serving; /readyz turns 503 when the AMQP connection is closed and 200 after recovery', async () => {
  assert.equal((await endpoint('/healthz')).status, 200);
  assert.deepEqual(await (await endpoint('/readyz')).json(), { ready: true, reasons: [], degraded: [] });
  const reconnectsBefore = (await scrape()).get('mqtt_amqp_bridge_amqp_reconnects_total') ?? 0;
  assert.equal(await closeConnectionsNamed(connectionName, 'http test'), 1);
  await waitFor(async () => (await endpoint('/readyz')).status === 503, '/readyz to answer 503');
  const notReady = (await (await endpoint('/readyz')).json()) as { ready: boolean; reasons: string[] };
  assert.equal(notReady.ready, false);
  assert.match(notReady.reasons.join(' '), /^amqp: (disconnected|connecting)$/);
  assert.equal((await endpoint('/healthz')).status, 200, 'alive all along');
  await waitFor(async () => (await endpoint('/readyz')).status === 200, '/readyz to answer 200 again', 15_000);
  assert.equal((await scrape()).get('mqtt_amqp_bridge_amqp_reconnects_total'), reconnectsBefore + 1);
  assert.equal((await endpoint('/nope')).status, 404);
});
