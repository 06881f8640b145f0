import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestConsumer, deleteExchanges, publishConfirmed, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { assertRabbitSpeaksAmqp10 } from '../helpers/amqp10.js';
import { connectClient, startTestBridge, TRANSPORTS, type TestBridge } from '../helpers/bridge.js';

/**
 * The AMQP 1.0 back end against RabbitMQ 3.x's AMQP 1.0 plugin (rabbitmq_amqp1_0, on the same
 * port): `/exchange/X/RK` and `/exchange/X` with the subject as routing key, checked by an AMQP
 * 0-9-1 consumer (the bytes, the routing key); `/amq/queue/Q` downlink; an exchange that does
 * not exist refused, the other rules flowing.
 */
describe('AMQP 1.0 with RabbitMQ 3.x (rabbitmq_amqp1_0)', () => {
  const exchange = uniqueName('amqp10-x');
  const missing = uniqueName('amqp10-missing');
  const queue = uniqueName('amqp10-q');
  let bridge: TestBridge;
  let consumer: TestConsumer;

  before(async () => {
    await assertRabbitSpeaksAmqp10();
    await withChannel(async (channel) => {
      await channel.assertExchange(exchange, 'topic', { durable: false });
      await channel.assertQueue(queue, { durable: false });
      await channel.bindQueue(queue, exchange, 'cmd.#');
    });
    consumer = await TestConsumer.create([{ exchange, key: 'up.#' }, { exchange, key: 'fixed.key' }]);
    bridge = await startTestBridge({
      amqp: { protocol: '1.0', url: 'amqp://guest:guest@127.0.0.1:5672', reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
      uplink: [
        { name: 'fixed', topic: 'fixed/#', address: `/exchange/${exchange}/fixed.key` },
        { name: 'missing', topic: 'missing/#', address: `/exchange/${missing}/k` },
        { name: 'by-subject', topic: 'up/{device}/#', address: `/exchange/${exchange}`, subject: 'up.{device}.{#}', properties: { contentType: 'application/json' } },
      ],
      downlink: [{ name: 'commands', address: `/amq/queue/${queue}`, subject: 'cmd.{device}.#', topic: 'devices/{device}/commands/{#}' }],
    });
  });

  after(async () => {
    await bridge?.stop();
    await consumer?.close();
    await withChannel((channel) => channel.deleteQueue(queue)).catch(() => {});
    await deleteExchanges(exchange);
  });

  for (const transport of TRANSPORTS) {
    test(`uplink over ${transport}: /exchange/X with the subject as routing key; a 0-9-1 consumer sees the exact bytes and properties`, async () => {
      const device = await connectClient(bridge.url(transport), { clientId: uniqueName('dev') });
      const payload = Buffer.from([0, 0xff, 0x10, 0x7f, 0x80]);
      const before = consumer.messages.length;
      await device.publishAsync(`up/d-${transport}/room.1/temp`, payload, { qos: 1 });
      const messages = await consumer.waitForCount(before + 1);
      await device.endAsync();
      const message = messages.at(-1)!;
      assert.equal(message.fields.routingKey, `up.d-${transport}.room/1.temp`);
      assert.deepEqual(message.content, payload);
      assert.equal(message.properties.contentType, 'application/json');
      assert.equal(message.properties.deliveryMode, 2, 'durable');
      assert.match(String(message.properties.messageId), /^[0-9a-f-]{36}$/);
    });
  }

  test('uplink: /exchange/X/RK gives that routing key; QoS 0 and 2 too', async () => {
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    const before = consumer.messages.length;
    await device.publishAsync('fixed/a', Buffer.from('zero'), { qos: 0 });
    await device.publishAsync('fixed/b', Buffer.from('two'), { qos: 2 });
    const messages = await consumer.waitForCount(before + 2);
    await device.endAsync();
    assert.deepEqual(
      messages.slice(before).map((message) => [message.fields.routingKey, message.content.toString()]).sort(),
      [['fixed.key', 'two'], ['fixed.key', 'zero']],
    );
  });

  test('an exchange that does not exist: RabbitMQ refuses the address, QoS 1 is never acknowledged, /readyz names it; the other rules flow', async () => {
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev'), reconnectPeriod: 0 });
    const rejected = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'rejected' });
    const before = await rejected();
    let acked = false;
    device.publish('missing/1', Buffer.from('x'), { qos: 1 }, () => (acked = true));
    await waitFor(async () => (await rejected()) === before + 1, 'uplink_failed_total{reason="rejected"}');
    assert.equal(acked, false);
    assert.match(bridge.bridge.readiness().degraded.join('\n'), new RegExp(`address "/exchange/${missing}/k": the broker refuses it \\(amqp:not-found: NOT_FOUND - no exchange '${missing}'`));
    await device.endAsync(true);
    const other = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    const count = consumer.messages.length;
    await other.publishAsync('fixed/after', Buffer.from('still flows'), { qos: 1 });
    await consumer.waitForCount(count + 1);
    await other.endAsync();
  });

  test('downlink: /amq/queue/Q; RabbitMQ gives a message published over 0-9-1 its routing key as subject, whose captures render the topic', async () => {
    const device = await connectClient(bridge.url('tcp'), { clientId: uniqueName('dev') });
    const got: Array<[string, Buffer]> = [];
    device.on('message', (topic, payload) => got.push([topic, payload]));
    await device.subscribeAsync('devices/#', { qos: 1 });
    await publishConfirmed(exchange, 'cmd.d1.reboot.room/1', Buffer.from([1, 0, 2]));
    await waitFor(() => got.length === 1, 'the command at the device');
    await device.endAsync();
    assert.deepEqual(got, [['devices/d1/commands/reboot/room.1', Buffer.from([1, 0, 2])]]);
  });
});
