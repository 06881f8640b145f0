import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deleteExchanges, uniqueName, waitFor } from '../helpers/amqp.js';
import { forwardAllTo, startTestBridge, type TestBridge, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import mqttPacket from 'mqtt-packet';
import { RawMqttClient } from '../helpers/raw-mqtt.js';
import { PENDING_QOS2_ENTRY_BYTES } from '../../src/config/schema.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const exchange = uniqueName('state-memory');
/** As many QoS 2 messages as aedes lets one connection hold awaiting PUBREL (maxInflightInbound 1000), less one. */
const HELD = 999;
const PAYLOAD_BYTES = 60 * 1024;
const MIB = 1024 * 1024;

let bridge: TestBridge;

before(async () => {
  // The bound holds exactly HELD messages per session; nobody consumes from the exchange, so the
  // payloads the bridge forwards are RabbitMQ's to drop, not this process's to hold.
  bridge = await startTestBridge({ mqtt: { maxPendingQos2BytesPerSession: HELD * PENDING_QOS2_ENTRY_BYTES }, ...forwardAllTo(exchange) });
});

after(async () => {
  await bridge?.stop();
  await deleteExchanges(exchange);
});

const retainedStored = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_retained_messages');
const forwardedCount = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_messages_total');
const refusals = () => bridge.bridge.metrics.value('mqtt_amqp_bridge_limits_refused_total', { limit: 'qos2_pending_bytes' });

/** Buffers outside the V8 heap (payloads), after everything collectable is collected. */
function bufferMemory(): number {
  gc();
  gc();
  const { external, arrayBuffers } = process.memoryUsage();
  return Math.max(external, arrayBuffers);
}

/** A connection of a persistent session (clean session 0). */
async function session(transport: Transport, clientId: string): Promise<RawMqttClient> {
  const connection = await RawMqttClient.open(transport, bridge.url(transport));
  const connack = await connection.connect(clientId, false);
  assert.equal(connack.returnCode, 0);
  return connection;
}

/** Sends QoS 2 PUBLISHes with these packet ids and waits for a PUBREC for each (no PUBREL is sent). */
async function publishWithoutPubrel(connection: RawMqttClient, topic: string, ids: number[], payload: Buffer): Promise<void> {
  for (const messageId of ids) connection.send({ cmd: 'publish', topic, payload, qos: 2, messageId, dup: false, retain: false });
  await waitFor(() => connection.count('pubrec') >= ids.length, () => `${ids.length} PUBRECs (have ${connection.count('pubrec')})`, 120_000);
}

async function settled(): Promise<void> {
  await waitFor(() => bridge.bridge.flow.pendingMessages === 0, 'the forwarded publishes to be confirmed');
}

for (const transport of TRANSPORTS) {
  describe(`QoS 2 state over ${transport}`, () => {
    test(`QoS 2 state ${transport} - ${HELD} publishes of 60 KB held without PUBREL keep no payload in the bridge, after the client has left too`, async (t) => {
      const clientId = uniqueName(`held-${transport}`);
      const topic = `held/${transport}`;
      await settled();
      const baseline = bufferMemory();
      const forwardedBefore = await forwardedCount();
      const device = await session(transport, clientId);
      await publishWithoutPubrel(
        device,
        topic,
        Array.from({ length: HELD }, (_, i) => i + 1),
        Buffer.alloc(PAYLOAD_BYTES, 7),
      );
      assert.equal(await forwardedCount(), forwardedBefore + HELD, 'each forwarded once, before its PUBREC');
      device.destroy();
      await settled();
      const held = bufferMemory() - baseline;
      t.diagnostic(`buffers held after ${HELD} x 60 KB QoS 2 publishes awaiting PUBREL: ${(held / MIB).toFixed(2)} MiB`);
      // aedes' own store kept every PUBLISH whole: HELD x 60 KB = 58.5 MiB for this one session.
      assert.ok(held < 8 * MIB, `${(held / MIB).toFixed(1)} MiB of buffers still held after ${HELD} x 60 KB QoS 2 publishes awaiting PUBREL`);

      // The session still recognises each of them [MQTT-4.3.3-2]: a resend is not forwarded again.
      const back = await session(transport, clientId);
      try {
        back.send({ cmd: 'publish', topic, payload: Buffer.alloc(PAYLOAD_BYTES, 7), qos: 2, messageId: 500, dup: true, retain: false });
        assert.equal((await back.next('pubrec')).messageId, 500);
        back.send({ cmd: 'pubrel', messageId: 500 });
        assert.equal((await back.next('pubcomp')).messageId, 500);
        await settled();
        assert.equal(await forwardedCount(), forwardedBefore + HELD, 'the resend was not forwarded');
      } finally {
        back.destroy();
      }
    });

    test(`QoS 2 state ${transport} - past the bytes per session a QoS 2 PUBLISH is refused, also across reconnects; PUBREL frees room and exactly once holds`, async () => {
      const clientId = uniqueName(`bound-${transport}`);
      const topic = `bound/${transport}`;
      const first = await session(transport, clientId);
      await publishWithoutPubrel(
        first,
        topic,
        Array.from({ length: HELD }, (_, i) => i + 1),
        Buffer.from('small'),
      );
      first.destroy();
      await settled();
      const forwardedBefore = await forwardedCount();
      const refusedBefore = await refusals();

      // A new connection: aedes' count per connection (maxInflightInbound) starts again at 0; the session's bound does not.
      const second = await session(transport, clientId);
      try {
        second.send({ cmd: 'publish', topic, payload: Buffer.from('one too many'), qos: 2, messageId: 1000, dup: false, retain: false });
        await waitFor(() => second.closed, 'the connection of the refused publish to close');
        assert.equal(second.count('pubrec'), 0);
      } finally {
        second.destroy();
      }
      assert.equal(await refusals(), refusedBefore + 1);
      await settled();
      assert.equal(await forwardedCount(), forwardedBefore, 'the refused publish was not forwarded');

      const third = await session(transport, clientId);
      try {
        // A held one resent is recognised, not refused and not forwarded.
        third.send({ cmd: 'publish', topic, payload: Buffer.from('small'), qos: 2, messageId: 7, dup: true, retain: false });
        assert.equal((await third.next('pubrec')).messageId, 7);
        third.send({ cmd: 'pubrel', messageId: 1 });
        assert.equal((await third.next('pubcomp')).messageId, 1);
        // The room PUBREL freed takes the publish refused before; the device resends it.
        third.send({ cmd: 'publish', topic, payload: Buffer.from('one too many'), qos: 2, messageId: 1000, dup: true, retain: false });
        assert.equal((await third.next('pubrec')).messageId, 1000);
        await settled();
        assert.equal(await forwardedCount(), forwardedBefore + 1, 'forwarded once: the resent 7 was not');
        assert.equal(third.closed, false);
      } finally {
        third.destroy();
      }
    });
  });
}

/** How many retained messages the next test stores, each a byte. */
const RETAINED = 300;

for (const transport of TRANSPORTS) {
  test(`retained memory ${transport} - a retained message keeps its own bytes, not the ${PAYLOAD_BYTES / 1024} KB chunk it arrived in`, async (t) => {
    const topics = Array.from({ length: RETAINED }, (_, i) => `tiny/${transport}/${i}`);
    await settled();
    const baseline = bufferMemory();
    const device = await RawMqttClient.open(transport, bridge.url(transport));
    try {
      await device.connect(uniqueName('tiny'));
      for (const topic of topics) {
        // The retained byte, then 60 KB of something else, in one write (over ws one message).
        device.sendRaw(
          Buffer.concat([
            mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: true, dup: false } as unknown as mqttPacket.Packet),
            mqttPacket.generate({ cmd: 'publish', topic: `padding/${transport}`, payload: Buffer.alloc(PAYLOAD_BYTES), qos: 0, retain: false, dup: false } as unknown as mqttPacket.Packet),
          ]),
        );
      }
      await waitFor(async () => (await retainedStored()) === RETAINED, `${RETAINED} retained messages stored`);
      await settled();
      const held = bufferMemory() - baseline;
      t.diagnostic(`buffers held by ${RETAINED} one-byte retained messages, each sent beside 60 KB: ${(held / MIB).toFixed(2)} MiB`);
      // Kept as views into the chunks they arrived in, they held 17.6 MiB.
      assert.ok(held < 3 * MIB, `${(held / MIB).toFixed(1)} MiB of buffers held by ${RETAINED} one-byte retained messages`);
    } finally {
      for (const topic of topics) device.send({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false });
      await waitFor(async () => (await retainedStored()) === 0, 'the retained messages to be cleared');
      device.destroy();
    }
  });
}
