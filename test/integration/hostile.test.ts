import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { delay, deleteExchanges, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge, TRANSPORTS } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

const exchange = uniqueName('hostile');
const CONNECT_TIMEOUT_MS = 1_500;
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    mqtt: {
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      maxClientIdLength: 32,
    },
    ...forwardAllTo(exchange),
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await deleteExchanges(exchange);
});

for (const transport of TRANSPORTS) {
  describe(`hostile input over ${transport}`, () => {
    test(`hostile ${transport} - client identifiers: empty with clean session 0 or too long get CONNACK 2; empty with clean session 1 is fine`, async () => {
      const cases: Array<[string, boolean, number]> = [
        ['', false, 2],
        ['x'.repeat(33), true, 2],
        ['', true, 0],
        ['x'.repeat(32), true, 0],
      ];
      for (const [clientId, clean, expected] of cases) {
        const client = await RawMqttClient.open(transport, bridge.url(transport));
        try {
          assert.equal((await client.connect(clientId, clean)).returnCode, expected, `client id of ${clientId.length} characters, clean ${clean}`);
        } finally {
          client.destroy();
        }
      }
    });

    test(`hostile ${transport} - topics with U+0000 or invalid UTF-8 are refused and never reach RabbitMQ`, async () => {
      const start = consumer.messages.length;
      for (const topic of [Buffer.from('bad\u0000topic'), Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe])]) {
        const client = await RawMqttClient.open(transport, bridge.url(transport));
        try {
          await client.connect(uniqueName('bad-topic'));
          // A PUBLISH written by hand, so the topic bytes are exactly these.
          const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, Buffer.from([0, 1]), Buffer.from('x')]);
          client.sendRaw(Buffer.concat([Buffer.from([0x32, body.length]), body]));
          await waitFor(() => client.closed, 'the publisher of a bad topic to be disconnected');
          assert.equal(client.count('puback'), 0);
        } finally {
          client.destroy();
        }
      }
      const good = await connectClient(bridge.url(transport));
      await good.publishAsync(`hostile/${transport}/good`, 'fine', { qos: 1 });
      await good.endAsync();
      const arrived = await consumer.waitForCount(start + 1);
      await delay(200);
      assert.deepEqual(arrived.slice(start).map((message) => message.fields.routingKey), [`hostile.${transport}.good`]);
    });
  });
}

test(`hostile - slowloris: 500 sockets that send nothing are closed after connectTimeoutMs, while a normal client connects`, async () => {
  const port = Number(new URL(bridge.url('tcp')).port);
  const sockets: Socket[] = [];
  let closed = 0;
  for (let i = 0; i < 500; i++) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.on('close', () => closed++);
    sockets.push(socket);
  }
  try {
    await waitFor(() => sockets.every((socket) => !socket.connecting), 'the 500 sockets to be open');
    const normal = await connectClient(bridge.url('tcp'));
    await normal.publishAsync('hostile/slowloris/normal', 'ok', { qos: 1 });
    await normal.endAsync();
    assert.equal(closed, 0, 'idle sockets are kept until the connect timeout');
    await waitFor(() => closed === 500, () => `all 500 idle sockets to be closed (${closed} so far)`, CONNECT_TIMEOUT_MS + 5_000);
  } finally {
    for (const socket of sockets) socket.destroy();
  }
});
