import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { delay, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, startTestBridge, type TestBridge } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';
import { withMemoryAlarm } from '../helpers/rabbitmqctl.js';

// Changes RabbitMQ's global state (a memory alarm): the test command runs files one at a
// time, and withMemoryAlarm always restores the watermark.

const exchange = uniqueName('alarm');
let patient: TestBridge;
let impatient: TestBridge;
let consumer: TestConsumer;

before(async () => {
  const rules = { amqp: { exchanges: [{ name: exchange, type: 'topic' as const, durable: false, autoDelete: true }] }, uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }] };
  patient = await startTestBridge({ ...rules, amqp: { ...rules.amqp, publishTimeoutMs: 60_000 } });
  impatient = await startTestBridge({ ...rules, amqp: { ...rules.amqp, publishTimeoutMs: 500 } });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await patient?.stop();
  await impatient?.stop();
});

test('memory alarm - the QoS 1 PUBACK waits for the confirm RabbitMQ withholds, and comes after', async () => {
  const client = await connectClient(patient.url('tcp'));
  try {
    await withMemoryAlarm(async (lift) => {
      let acked = false;
      const published = client.publishAsync('alarm/held', 'held', { qos: 1 }).then(() => {
        acked = true;
      });
      await delay(2_000);
      assert.equal(acked, false, 'no PUBACK while RabbitMQ withholds the confirm');
      assert.equal(consumer.messages.length, 0, 'nothing reached the queue yet');
      assert.equal(patient.bridge.pendingMessages, 1);
      await lift();
      await published;
      assert.equal(acked, true);
      const messages = await consumer.waitForCount(1);
      await delay(200);
      assert.equal(messages.length, 1);
      assert.equal(messages[0]!.content.toString(), 'held');
    });
  } finally {
    await client.endAsync();
  }
});

test('memory alarm - QoS 2 PUBREC waits for the confirm too', async () => {
  const client = await RawMqttClient.open('ws', patient.url('ws'));
  try {
    await client.connect(uniqueName('alarm-q2'));
    const before = consumer.messages.length;
    await withMemoryAlarm(async (lift) => {
      client.send({ cmd: 'publish', topic: 'alarm/q2', payload: Buffer.from('q2'), qos: 2, messageId: 9, dup: false, retain: false });
      await delay(2_000);
      assert.equal(client.count('pubrec'), 0, 'no PUBREC while RabbitMQ withholds the confirm');
      await lift();
      assert.equal((await client.next('pubrec', 15_000)).messageId, 9);
    });
    await consumer.waitForCount(before + 1);
  } finally {
    client.destroy();
  }
});

test('memory alarm - a publish unconfirmed after publishTimeoutMs is not acknowledged; the device is disconnected', async () => {
  const client = await RawMqttClient.open('tcp', impatient.url('tcp'));
  try {
    await client.connect(uniqueName('alarm-timeout'));
    const failedBefore = await impatient.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'timeout' });
    await withMemoryAlarm(async () => {
      client.send({ cmd: 'publish', topic: 'alarm/timeout', payload: Buffer.from('late'), qos: 1, messageId: 4, dup: false, retain: false });
      await waitFor(() => client.closed, 'the bridge to disconnect the client', 10_000);
      assert.equal(client.count('puback'), 0);
      assert.equal(await impatient.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'timeout' }), failedBefore + 1);
    });
  } finally {
    client.destroy();
  }
});
