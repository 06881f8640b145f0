import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { dataSection } from '../../src/amqp10/rhea-internals.js';
import { Amqp10TestClient, QpidBroker, type Received } from '../helpers/amqp10.js';
import { uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, startTestBridge, TRANSPORTS, type TestBridge } from '../helpers/bridge.js';

/**
 * The AMQP 1.0 back end against Apache Qpid Proton's example broker: the exact bytes, subject,
 * application-properties and properties a device publish becomes, the QoS table (PUBACK and
 * PUBREC only once the broker accepted the transfer), and the downlink with topics rendered
 * from the subject.
 */
describe('AMQP 1.0 with Qpid', () => {
  let broker: QpidBroker;
  let bridge: TestBridge;
  let client: Amqp10TestClient;
  const uplinkAddress = uniqueName('telemetry');
  const downlinkAddress = uniqueName('commands');
  let uplink: Received[];

  before(async () => {
    broker = await QpidBroker.start();
    client = await Amqp10TestClient.connect({ port: broker.port });
    uplink = await client.receive(uplinkAddress);
    bridge = await startTestBridge({
      amqp: { protocol: '1.0', url: broker.url, containerId: 'bridge-qpid-test' },
      uplink: [
        {
          name: 'telemetry',
          topic: 'devices/{deviceId}/telemetry/#',
          address: uplinkAddress,
          subject: '{deviceId}.{#}',
          headers: { 'x-device-id': '{deviceId}' },
          properties: { contentType: 'application/octet-stream', contentEncoding: 'identity', correlationId: 'c-{deviceId}', replyTo: 'replies', priority: 7, expirationMs: 60000 },
        },
      ],
      downlink: [{ name: 'commands', address: downlinkAddress, subject: '{deviceId}.#', topic: 'devices/{deviceId}/commands/{#}', qos: 1 }],
    });
  });

  after(async () => {
    await bridge?.stop();
    await client?.close();
    await broker?.kill();
  });

  for (const transport of TRANSPORTS) {
    for (const qos of [0, 1, 2] as const) {
      test(`uplink over ${transport}, QoS ${qos}: exact bytes in one data section, subject, application-properties and properties`, async () => {
        const device: MqttClient = await connectClient(bridge.url(transport), { clientId: uniqueName('dev') });
        const payload = Buffer.from([0, 1, 2, 0xff, 0xfe, qos]);
        const topic = `devices/d-${transport}-${qos}/telemetry/room.1/temp`;
        const before = uplink.length;
        await device.publishAsync(topic, payload, { qos });
        await waitFor(() => uplink.length > before, 'the message at the Qpid broker');
        await device.endAsync();
        const { message } = uplink.at(-1)!;
        const body = message.body as { typecode: number; content: Buffer };
        assert.equal(body.typecode, 0x75, 'one data section');
        assert.deepEqual(body.content, payload);
        assert.equal(message.subject, `d-${transport}-${qos}.room/1.temp`);
        assert.deepEqual(message.application_properties, {
          'x-mqtt-topic': topic,
          'x-mqtt-qos': qos,
          'x-mqtt-client-id': device.options.clientId,
          'x-device-id': `d-${transport}-${qos}`,
        });
        assert.equal(message.content_type, 'application/octet-stream');
        assert.equal(message.content_encoding, 'identity');
        assert.equal(message.correlation_id, `c-d-${transport}-${qos}`);
        assert.equal(message.reply_to, 'replies');
        assert.equal(message.priority, 7);
        assert.equal(message.ttl, 60000);
        assert.equal(message.durable === true, qos > 0, 'durable for QoS 1/2 only');
        assert.match(String(message.message_id), /^[0-9a-f-]{36}$/);
        assert.ok(message.creation_time instanceof Date && Math.abs(message.creation_time.getTime() - Date.now()) < 60_000);
      });
    }
  }

  test('downlink: the subject captures give the topic; data sections and binary or string amqp-values arrive as their bytes', async () => {
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    const got: Array<{ topic: string; payload: Buffer; qos: number }> = [];
    device.on('message', (topic, payload, packet) => got.push({ topic, payload, qos: packet.qos }));
    await device.subscribeAsync('devices/d7/commands/#', { qos: 1 });
    const bytes = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]);
    assert.equal(await client.send(downlinkAddress, { subject: 'd7.reboot.now', body: dataSection(bytes) }), 'accepted');
    assert.equal(await client.send(downlinkAddress, { subject: 'd7.set.room/1', body: 'température' }), 'accepted');
    assert.equal(await client.send(downlinkAddress, { subject: 'd7.raw', body: Buffer.from([1, 2, 3]) }), 'accepted');
    await waitFor(() => got.length === 3, () => `3 commands, got ${got.length}`);
    await device.endAsync();
    assert.deepEqual(got, [
      { topic: 'devices/d7/commands/reboot/now', payload: bytes, qos: 1 },
      { topic: 'devices/d7/commands/set/room.1', payload: Buffer.from('température', 'utf8'), qos: 1 },
      { topic: 'devices/d7/commands/raw', payload: Buffer.from([1, 2, 3]), qos: 1 },
    ]);
  });

  test('downlink: a message without a subject, or with a body that is not bytes, is rejected and counted, never published', async () => {
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    const got: string[] = [];
    device.on('message', (topic) => got.push(topic));
    await device.subscribeAsync('#', { qos: 1 });
    const rejected = async () =>
      (await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'commands', reason: 'unmatched' })) +
      (await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'commands', reason: 'undecodable' }));
    const before = await rejected();
    await client.send(downlinkAddress, { body: dataSection(Buffer.from('no subject')) });
    await client.send(downlinkAddress, { subject: 'd7.map', body: { not: 'bytes' } });
    await waitFor(async () => (await rejected()) === before + 2, 'two rejections counted');
    await client.send(downlinkAddress, { subject: 'd7.after', body: 'ok' });
    await waitFor(() => got.length === 1, 'the next command');
    await device.endAsync();
    assert.deepEqual(got, ['devices/d7/commands/after']);
  });
});
