import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ConsumeMessage } from 'amqplib';
import type { MqttClient } from 'mqtt';
import { TestConsumer, uniqueName } from '../helpers/amqp.js';
import { connectClient, startTestBridge, TRANSPORTS, type TestBridge } from '../helpers/bridge.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every rule form of docs/mapping.md, on an exchange of this test's own. */
const exchange = uniqueName('uplink');
const prefix = uniqueName('t');

let bridge: TestBridge;
let consumer: TestConsumer;
let compat: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    amqp: { exchanges: [{ name: exchange, type: 'topic', durable: false, autoDelete: true }] },
    uplink: [
      {
        name: 'telemetry',
        topic: `${prefix}/devices/{deviceId}/telemetry/#`,
        exchange,
        routingKey: 'telemetry.{deviceId}.{#}',
        headers: { 'x-device-id': '{deviceId}' },
        properties: { contentType: 'application/json' },
      },
      {
        name: 'plus',
        topic: `${prefix}/plus/+/{id}`,
        exchange,
        routingKey: 'plus.{id}.{clientId}',
        headers: { 'x-user': '{username}', 'x-qos': 'q{qos}' },
        properties: { type: 'reading-{qos}', appId: 'bridge-test', correlationId: '{id}', priority: 5, expirationMs: 60000 },
      },
      { name: 'exchange-template', topic: `${prefix}/to/{target}/#`, exchange: '{target}', routingKey: 'templated.{#}' },
      { name: 'whole-topic', topic: `${prefix}/whole/#`, exchange, routingKey: 'whole.{topic}' },
      // Header tables of 20 and 35 copies of a 4 KB topic: past amqplib's 64 KiB, under and over a 128 KiB frame.
      { name: 'wide', topic: `${prefix}/wide/fits/#`, exchange, routingKey: 'wide.fits', headers: { 'x-copies': '{topic}'.repeat(20) } },
      { name: 'too-wide', topic: `${prefix}/wide/over/#`, exchange, routingKey: 'wide.over', headers: { 'x-copies': '{topic}'.repeat(35) } },
      { name: 'rest', topic: '#', exchange: 'amq.topic', routingKey: '{#}' },
    ],
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
  // Also `$prefix.#`, where a wrongly forwarded `$prefix/...` publish would land.
  compat = await TestConsumer.create([
    { exchange: 'amq.topic', key: `${prefix}.#` },
    { exchange: 'amq.topic', key: `$${prefix}.#` },
  ]);
});

after(async () => {
  await consumer?.close();
  await compat?.close();
  await bridge?.stop();
});

/** Publishes and returns the one AMQP message it produced on `from`. */
async function publishAndReceive(
  client: MqttClient,
  from: TestConsumer,
  topic: string,
  payload: Buffer,
  options: { qos: 0 | 1 | 2; retain?: boolean },
): Promise<ConsumeMessage> {
  const before = from.messages.length;
  await client.publishAsync(topic, payload, { qos: options.qos, retain: options.retain ?? false });
  const messages = await from.waitForCount(before + 1);
  return messages[before]!;
}

function assertStandardProperties(message: ConsumeMessage, qos: 0 | 1 | 2): void {
  assert.match(String(message.properties.messageId), UUID);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(Math.abs(Number(message.properties.timestamp) - now) <= 5, `timestamp ${message.properties.timestamp} is about ${now}`);
  assert.equal(message.properties.deliveryMode, qos === 0 ? 1 : 2);
}

for (const transport of TRANSPORTS) {
  describe(`uplink over ${transport}`, () => {
    let client: MqttClient;
    const clientId = uniqueName(`dev-${transport}`);

    before(async () => {
      client = await connectClient(bridge.url(transport), { clientId, username: `user-${transport}` });
    });
    after(async () => {
      await client?.endAsync();
    });

    test(`uplink ${transport} - captures, {#}, rule headers and properties reach the exchange exactly`, async () => {
      const payload = Buffer.from('{"temperature":21.5}');
      const message = await publishAndReceive(client, consumer, `${prefix}/devices/dev-1/telemetry/room.1/temp`, payload, { qos: 1 });
      assert.equal(message.fields.exchange, exchange);
      assert.equal(message.fields.routingKey, 'telemetry.dev-1.room/1.temp');
      assert.deepEqual(message.content, payload);
      assert.equal(message.properties.contentType, 'application/json');
      assert.deepEqual(message.properties.headers, {
        'x-mqtt-topic': `${prefix}/devices/dev-1/telemetry/room.1/temp`,
        'x-mqtt-qos': 1,
        'x-mqtt-client-id': clientId,
        'x-device-id': 'dev-1',
      });
      assertStandardProperties(message, 1);
    });

    test(`uplink ${transport} - a final # that matches zero levels drops the separator before {#}`, async () => {
      const message = await publishAndReceive(client, consumer, `${prefix}/devices/dev-2/telemetry`, Buffer.from('x'), { qos: 1 });
      assert.equal(message.fields.routingKey, 'telemetry.dev-2');
    });

    test(`uplink ${transport} - + and built-ins {clientId} {username} {qos} in routing key, headers and properties`, async () => {
      const message = await publishAndReceive(client, consumer, `${prefix}/plus/any/42`, Buffer.from('p'), { qos: 2 });
      assert.equal(message.fields.routingKey, `plus.42.${clientId}`);
      assert.deepEqual(message.properties.headers, {
        'x-mqtt-topic': `${prefix}/plus/any/42`,
        'x-mqtt-qos': 2,
        'x-mqtt-client-id': clientId,
        'x-user': `user-${transport}`,
        'x-qos': 'q2',
      });
      assert.equal(message.properties.type, 'reading-2');
      assert.equal(message.properties.appId, 'bridge-test');
      assert.equal(message.properties.correlationId, '42');
      assert.equal(message.properties.priority, 5);
      assert.equal(message.properties.expiration, '60000');
      assertStandardProperties(message, 2);
    });

    test(`uplink ${transport} - the exchange itself can come from the topic`, async () => {
      const message = await publishAndReceive(client, consumer, `${prefix}/to/${exchange}/a/b`, Buffer.from('t'), { qos: 1 });
      assert.equal(message.fields.exchange, exchange);
      assert.equal(message.fields.routingKey, 'templated.a.b');
    });

    test(`uplink ${transport} - {topic} is the whole topic encoded, empty levels kept`, async () => {
      const message = await publishAndReceive(client, consumer, `${prefix}/whole/a//b.c`, Buffer.from('w'), { qos: 0 });
      assert.equal(message.fields.routingKey, `whole.${prefix}.whole.a..b/c`);
      assertStandardProperties(message, 0);
    });

    test(`uplink ${transport} - the plugin-compatible default routes a/b/c to amq.topic as a.b.c`, async () => {
      const message = await publishAndReceive(client, compat, `${prefix}/compat/b/c`, Buffer.from('c'), { qos: 1 });
      assert.equal(message.fields.exchange, 'amq.topic');
      assert.equal(message.fields.routingKey, `${prefix}.compat.b.c`);
    });

    test(`uplink ${transport} - retain is carried as x-mqtt-retain`, async () => {
      const message = await publishAndReceive(client, compat, `${prefix}/retained`, Buffer.from('r'), { qos: 1, retain: true });
      assert.equal(message.properties.headers?.['x-mqtt-retain'], true);
    });

    test(`uplink ${transport} - binary, empty and 1 MiB payloads arrive byte for byte`, async () => {
      const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const large = randomBytes(1024 * 1024);
      for (const [name, payload] of [['binary', binary], ['empty', Buffer.alloc(0)], ['large', large]] as const) {
        for (const qos of [0, 1, 2] as const) {
          const message = await publishAndReceive(client, compat, `${prefix}/payload/${name}/${qos}`, payload, { qos });
          assert.equal(message.fields.routingKey, `${prefix}.payload.${name}.${qos}`);
          assert.equal(message.content.length, payload.length, `${name} qos ${qos} length`);
          assert.ok(message.content.equals(payload), `${name} qos ${qos} bytes`);
        }
      }
    });

    test(`uplink ${transport} - a publish no rule matches is not forwarded and is counted`, async () => {
      const unmatchedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_unmatched_total');
      const compatBefore = compat.messages.length;
      // [MQTT-4.7.2-1]: the catch-all "#" does not match a topic starting with "$".
      await client.publishAsync(`$${prefix}/status`, Buffer.from('u'), { qos: 1 });
      await client.publishAsync(`${prefix}/after-unmatched`, Buffer.from('a'), { qos: 1 });
      await compat.waitForCount(compatBefore + 1);
      assert.equal(compat.messages.length, compatBefore + 1);
      assert.equal(compat.messages[compatBefore]!.fields.routingKey, `${prefix}.after-unmatched`);
      assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_unmatched_total'), unmatchedBefore + 1);
    });
  });
}

test('uplink - headers past 64 KiB go out when they fit in one AMQP frame; a publish whose do not is acknowledged, dropped and counted as too_large, and the AMQP connection stays up', { timeout: 30_000 }, async () => {
  const metrics = bridge.bridge.metrics;
  const client = await connectClient(bridge.url('tcp'), { clientId: uniqueName('wide') });
  const level = 'w'.repeat(3_900);
  const fits = await publishAndReceive(client, consumer, `${prefix}/wide/fits/${level}`, Buffer.from('fits'), { qos: 1 });
  assert.equal(fits.fields.routingKey, 'wide.fits');
  assert.equal(String(fits.properties.headers?.['x-copies']), `${prefix}/wide/fits/${level}`.repeat(20), 'about 80 KB of header, whole');
  const droppedBefore = await metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'too_large' });
  const reconnectsBefore = await metrics.value('mqtt_amqp_bridge_amqp_reconnects_total');
  const before = consumer.messages.length;
  await client.publishAsync(`${prefix}/wide/over/${level}`, Buffer.from('over'), { qos: 1 }); // acknowledged: resending cannot help
  assert.equal(await metrics.value('mqtt_amqp_bridge_uplink_dropped_total', { reason: 'too_large' }), droppedBefore + 1);
  const next = await publishAndReceive(client, consumer, `${prefix}/wide/fits/${level}`, Buffer.from('next'), { qos: 1 });
  assert.equal(next.content.toString(), 'next');
  assert.equal(consumer.messages.length, before + 1, 'the one over the frame never reached RabbitMQ');
  assert.equal(await metrics.value('mqtt_amqp_bridge_amqp_reconnects_total'), reconnectsBefore, 'RabbitMQ did not close the connection');
  assert.equal(await metrics.value('mqtt_amqp_bridge_amqp_connected'), 1);
  await client.endAsync();
});

test('uplink - forwarded messages are counted per rule and QoS', async () => {
  const metrics = bridge.bridge.metrics;
  const telemetry = await metrics.value('mqtt_amqp_bridge_uplink_messages_total', { rule: 'telemetry', qos: '1' });
  assert.equal(telemetry, 2 * TRANSPORTS.length);
  const bytes = await metrics.value('mqtt_amqp_bridge_uplink_bytes_total', { rule: 'telemetry', qos: '1' });
  assert.equal(bytes, (Buffer.byteLength('{"temperature":21.5}') + 1) * TRANSPORTS.length);
});
