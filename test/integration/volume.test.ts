import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { MqttClient } from 'mqtt';
import { TestConsumer, uniqueName } from '../helpers/amqp.js';
import { connectClient, startTestBridge, TRANSPORTS, type TestBridge } from '../helpers/bridge.js';

const CLIENTS = 10;
const PER_CLIENT = 1_000;

const exchange = uniqueName('volume');
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    amqp: { exchanges: [{ name: exchange, type: 'topic', durable: false, autoDelete: true }] },
    uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
});

for (const transport of TRANSPORTS) {
  test(`volume ${transport} - ${CLIENTS * PER_CLIENT} QoS 1 messages from ${CLIENTS} clients all arrive, none twice`, async () => {
    const first = consumer.messages.length;
    const clients: MqttClient[] = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => connectClient(bridge.url(transport), { clientId: uniqueName(`vol-${transport}-${i}`) })),
    );
    const started = process.hrtime.bigint();
    try {
      await Promise.all(
        clients.map((client, c) =>
          Promise.all(Array.from({ length: PER_CLIENT }, (_, i) => client.publishAsync(`vol/${transport}/${c}`, `${c}:${i}`, { qos: 1 }))),
        ),
      );
      const ackedMs = Number(process.hrtime.bigint() - started) / 1e6;
      const messages = (await consumer.waitForCount(first + CLIENTS * PER_CLIENT, 60_000)).slice(first);
      const seen = new Set(messages.map((message) => message.content.toString()));
      assert.equal(messages.length, CLIENTS * PER_CLIENT, 'every message arrived exactly once');
      assert.equal(seen.size, CLIENTS * PER_CLIENT, 'no duplicates');
      for (let c = 0; c < CLIENTS; c++) {
        // Per client, AMQP order is the publish order [MQTT-4.6.0-2].
        const order = messages.filter((m) => m.fields.routingKey === `vol.${transport}.${c}`).map((m) => Number(m.content.toString().split(':')[1]));
        assert.deepEqual(order, Array.from({ length: PER_CLIENT }, (_, i) => i));
      }
      // Figures for the notes; never asserted.
      console.log(`# ${transport}: ${CLIENTS * PER_CLIENT} QoS 1 acknowledged in ${ackedMs.toFixed(0)} ms (${Math.round((CLIENTS * PER_CLIENT) / (ackedMs / 1000))} msgs/s)`);
    } finally {
      await Promise.all(clients.map((client) => client.endAsync()));
    }
  });
}
