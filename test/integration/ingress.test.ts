import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { delay, deleteExchanges, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { BareConnection, fixedHeader } from '../helpers/bare-connection.js';
import { connectClient, forwardAllTo, startTestBridge, type TestBridge, type Transport, TRANSPORTS } from '../helpers/bridge.js';

// Small limits, so that each can be reached with a few connections.
const KiB = 1024;
const LIMITS = {
  maxPacketBytes: 256 * KiB,
  maxConnectBytes: 16 * KiB,
  maxUnauthenticatedBytes: 256 * KiB, // a quarter, 64 KiB, per address
  maxBufferedBytesPerAddress: 600 * KiB,
  maxBufferedBytes: 2 * 1024 * KiB,
  maxConnectionsPerAddress: 20,
  packetTimeoutMs: 3_000,
};
/** A partial CONNECT announcing this many bytes in all (header included): 4 fit in an address's quarter, 17 in the total. */
const PARTIAL_CONNECT_BYTES = 15 * KiB + 4;
/** A partial PUBLISH announcing this many bytes in all: 3 fit in an address's share, 10 in the total. */
const PARTIAL_PUBLISH_BYTES = 200_004;

const exchange = uniqueName('ingress');
let bridge: TestBridge;
let consumer: TestConsumer;
const open: BareConnection[] = [];

before(async () => {
  bridge = await startTestBridge({ mqtt: LIMITS, ...forwardAllTo(exchange) });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

afterEach(async () => {
  for (const connection of open.splice(0)) connection.destroy();
  // Each test starts with the budgets empty: every connection of the last one is gone, and all it held released.
  await waitFor(async () => (await connections('tcp')) + (await connections('ws')) === 0, 'the connections of the last test to be closed');
  assert.deepEqual([await buffered('unauthenticated'), await buffered('authenticated')], [0, 0], 'nothing left held');
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await deleteExchanges(exchange);
});

const refused = (limit: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_limits_refused_total', { limit });
const buffered = (login: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_buffered_bytes', { login });
const connections = (listener: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_connections', { listener });

async function bare(transport: Transport, localAddress: string): Promise<BareConnection> {
  const connection = await BareConnection.open(transport, bridge.url(transport), localAddress);
  open.push(connection);
  return connection;
}

/** The start of a packet of `total` bytes (header included): its fixed header and `body` bytes of its body. */
function packetStart(type: number, total: number, body: Buffer): Buffer {
  const headerLength = fixedHeader(type, total).length; // the same as for total - headerLength at these sizes
  return Buffer.concat([fixedHeader(type, total - headerLength), body]);
}

const CONNECT_BODY_START = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60]); // "MQTT", level 4, clean session, keep-alive 60
const publishBodyStart = (topic: string) => Buffer.concat([Buffer.from([0, topic.length]), Buffer.from(topic), Buffer.from([0, 1]), Buffer.alloc(1_000, 0x61)]);

/** Starts a CONNECT of PARTIAL_CONNECT_BYTES and never finishes it. */
function partialConnect(connection: BareConnection): void {
  connection.sendPartial(packetStart(0x10, PARTIAL_CONNECT_BYTES, CONNECT_BODY_START), PARTIAL_CONNECT_BYTES);
}

/** Starts a QoS 1 PUBLISH of PARTIAL_PUBLISH_BYTES and never finishes it. */
function partialPublish(connection: BareConnection): void {
  connection.sendPartial(packetStart(0x32, PARTIAL_PUBLISH_BYTES, publishBodyStart('ingress/partial')), PARTIAL_PUBLISH_BYTES);
}

/** Waits a little and says whether the connection is still open (for connections that should be kept). */
async function stillOpen(connection: BareConnection): Promise<boolean> {
  await delay(200);
  return !connection.closed;
}

for (const transport of TRANSPORTS) {
  // Each transport uses its own source addresses.
  const at = (n: number) => `127.0.${transport === 'tcp' ? 1 : 2}.${n}`;

  describe(`ingress limits over ${transport}`, () => {
    test(`ingress ${transport} - a CONNECT announcing more than maxConnectBytes (within maxPacketBytes) is refused from its fixed header, at once`, async () => {
      const before = await refused('connect_size');
      const attacker = await bare(transport, at(1));
      const started = Date.now();
      // The fixed header alone (over WebSocket, as a whole message of 5 bytes): the body never comes.
      attacker.send(fixedHeader(0x10, 250_000));
      await waitFor(() => attacker.closed, 'the connection to be closed', 2_000);
      assert.ok(Date.now() - started < LIMITS.packetTimeoutMs, 'closed from the header, not by a timeout');
      assert.equal(await refused('connect_size'), before + 1);
    });

    test(`ingress ${transport} - a CONNECT just within maxConnectBytes is accepted; one byte more is refused`, async () => {
      const willPayload = (size: number) => Buffer.alloc(size, 0x77);
      const connectOf = (payloadSize: number) =>
        mqttPacket.generate({
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clean: true,
          clientId: uniqueName('big-will'),
          keepalive: 60,
          will: { topic: 'ingress/will', payload: willPayload(payloadSize), qos: 0, retain: false },
        });
      const overhead = connectOf(0).length - 2; // the remaining length without a will payload (its fixed header is 2 bytes)
      const fits = connectOf(LIMITS.maxConnectBytes - overhead);
      assert.equal(fits.length, 4 + LIMITS.maxConnectBytes, 'a CONNECT of exactly maxConnectBytes');
      const accepted = await bare(transport, at(2));
      accepted.send(fits);
      assert.equal(((await accepted.nextOrClose('connack')) as unknown as { returnCode: number } | null)?.returnCode, 0);
      // A clean DISCONNECT: its will is not published (it would reach the next test's consumer).
      accepted.send(mqttPacket.generate({ cmd: 'disconnect' }));
      const before = await refused('connect_size');
      const refusedConnection = await bare(transport, at(2));
      refusedConnection.send(connectOf(LIMITS.maxConnectBytes - overhead + 1));
      assert.equal(await refusedConnection.nextOrClose('connack'), null);
      assert.equal(await refused('connect_size'), before + 1);
    });

    test(`ingress ${transport} - more than maxConnectBytes sent before the CONNACK closes the connection; nothing of it is forwarded`, async () => {
      const before = await refused('connect_size');
      const start = consumer.messages.length;
      const eager = await bare(transport, at(3));
      const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: uniqueName('eager'), keepalive: 60 });
      const publish = mqttPacket.generate({ cmd: 'publish', topic: 'ingress/eager', payload: Buffer.alloc(20 * KiB), qos: 1, messageId: 1, dup: false, retain: false });
      eager.send(Buffer.concat([connect, publish])); // one write: before the CONNACK could come
      assert.equal(await eager.nextOrClose('connack'), null);
      assert.equal(await refused('connect_size'), before + 1);
      // A client that waits for its CONNACK, as MQTT clients do, publishes as much as it likes.
      const patient = await connectClient(bridge.url(transport));
      await patient.publishAsync('ingress/patient', Buffer.alloc(20 * KiB), { qos: 1 });
      await patient.endAsync();
      const arrived = await consumer.waitForCount(start + 1);
      await delay(200);
      assert.deepEqual(arrived.slice(start).map((message) => message.fields.routingKey), ['ingress.patient']);
    });

    test(`ingress ${transport} - one address holds at most a quarter of maxUnauthenticatedBytes in partial CONNECTs`, async () => {
      const before = await refused('unauthenticated_bytes');
      const held: BareConnection[] = [];
      for (let i = 0; i < 4; i++) {
        const connection = await bare(transport, at(4));
        partialConnect(connection);
        held.push(connection);
      }
      const fifth = await bare(transport, at(4));
      partialConnect(fifth);
      await waitFor(() => fifth.closed, 'the fifth partial CONNECT of the address to be refused', 2_000);
      assert.equal(await refused('unauthenticated_bytes'), before + 1);
      for (const connection of held) assert.equal(await stillOpen(connection), true, 'the first four are held (until packetTimeoutMs)');
      // Another address is not affected.
      const other = await bare(transport, at(5));
      partialConnect(other);
      assert.equal(await stillOpen(other), true);
    });

    test(`ingress ${transport} - partial CONNECTs from many addresses fill maxUnauthenticatedBytes; ordinary logins still pass`, async () => {
      const before = await refused('unauthenticated_bytes');
      // 17 partial CONNECTs fit in all: four from each of four addresses, one from a fifth.
      for (let i = 0; i < 17; i++) partialConnect(await bare(transport, at(10 + Math.floor(i / 4))));
      await waitFor(async () => (await buffered('unauthenticated')) === 17 * PARTIAL_CONNECT_BYTES, 'all 17 to be held');
      assert.equal(await refused('unauthenticated_bytes'), before, 'all 17 fit');
      const late = await bare(transport, at(20));
      partialConnect(late);
      await waitFor(() => late.closed, 'a partial CONNECT past the total to be refused', 2_000);
      assert.equal(await refused('unauthenticated_bytes'), before + 1);
      // A CONNECT of a few dozen bytes is never refused by a shared budget.
      const device = await connectClient(bridge.url(transport));
      await device.publishAsync('ingress/while-full', 'ok', { qos: 1 });
      await device.endAsync();
    });

    test(`ingress ${transport} - logged-in connections of one address hold at most maxBufferedBytesPerAddress in partial PUBLISHes`, async () => {
      const before = await refused('buffered_bytes_per_address');
      const held: BareConnection[] = [];
      for (let i = 0; i < 3; i++) {
        const connection = await bare(transport, at(30));
        assert.equal(await connection.connect(uniqueName('partial')), 0);
        partialPublish(connection);
        held.push(connection);
      }
      const fourth = await bare(transport, at(30));
      assert.equal(await fourth.connect(uniqueName('partial')), 0);
      partialPublish(fourth);
      await waitFor(() => fourth.closed, 'the fourth partial PUBLISH of the address to be refused', 2_000);
      assert.equal(await refused('buffered_bytes_per_address'), before + 1);
      for (const connection of held) assert.equal(await stillOpen(connection), true);
      assert.equal(await buffered('authenticated'), 3 * PARTIAL_PUBLISH_BYTES, 'each held as its announced size');
      // A device at the same address publishing ordinary messages goes on.
      const start = consumer.messages.length;
      const device = await bare(transport, at(30));
      assert.equal(await device.connect(uniqueName('neighbour')), 0);
      for (let messageId = 1; messageId <= 20; messageId++) {
        device.send(mqttPacket.generate({ cmd: 'publish', topic: `ingress/${transport}/neighbour`, payload: Buffer.alloc(1_000), qos: 1, messageId, dup: false, retain: false }));
        assert.equal(((await device.nextOrClose('puback')) as unknown as { messageId: number } | null)?.messageId, messageId);
      }
      await consumer.waitForCount(start + 20);
    });

    test(`ingress ${transport} - partial PUBLISHes over many addresses are bounded by maxBufferedBytes`, async () => {
      const before = await refused('buffered_bytes');
      // 10 fit in all (3 per address, under the per-address share); the 11th does not.
      const partials: BareConnection[] = [];
      for (let i = 0; i < 11; i++) {
        const connection = await bare(transport, at(40 + Math.floor(i / 3)));
        assert.equal(await connection.connect(uniqueName('partial')), 0);
        partials.push(connection);
      }
      for (const connection of partials.slice(0, 10)) partialPublish(connection);
      await delay(200);
      assert.equal(await refused('buffered_bytes'), before, 'all 10 fit');
      partialPublish(partials[10]!);
      await waitFor(() => partials[10]!.closed, 'the partial PUBLISH past the total to be refused', 2_000);
      assert.equal(await refused('buffered_bytes'), before + 1);
      // Once one completes its packet, there is room again.
      partials[0]!.destroy();
      await waitFor(() => partials[0]!.closed, 'one to go');
      const next = await bare(transport, at(50));
      assert.equal(await next.connect(uniqueName('partial')), 0);
      partialPublish(next);
      assert.equal(await stillOpen(next), true);
    });

    test(`ingress ${transport} - a packet not complete within packetTimeoutMs closes the connection, even with keep-alive 0`, async () => {
      const before = await refused('packet_timeout');
      const slow = await bare(transport, at(60));
      assert.equal(await slow.connect(uniqueName('slow'), 0), 0);
      // A small packet (it costs no budget), started and never finished.
      const total = 2_000;
      slow.sendPartial(packetStart(0x32, total, publishBodyStart('ingress/slow').subarray(0, 500)), total);
      const started = Date.now();
      await waitFor(() => slow.closed, 'the connection with the incomplete packet to be closed', LIMITS.packetTimeoutMs + 5_000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= LIMITS.packetTimeoutMs - 100, `closed after ${elapsed} ms, not before packetTimeoutMs`);
      assert.equal(await refused('packet_timeout'), before + 1);
    });

    test(`ingress ${transport} - a packet sent in pieces that completes within packetTimeoutMs is fine`, async () => {
      const steady = await bare(transport, at(61));
      assert.equal(await steady.connect(uniqueName('pieces'), 0), 0);
      const packet = mqttPacket.generate({ cmd: 'publish', topic: 'ingress/pieces', payload: Buffer.alloc(3_000, 0x70), qos: 1, messageId: 7, dup: false, retain: false });
      // Over WebSocket the pieces are one message's payload, sent in three parts of the socket's bytes.
      const pieces = [packet.subarray(0, 1_000), packet.subarray(1_000, 2_000), packet.subarray(2_000)];
      steady.sendPartial(pieces[0]!, packet.length);
      for (const piece of pieces.slice(1)) {
        await delay(LIMITS.packetTimeoutMs / 3);
        await steady.sendMore(piece);
      }
      const puback = await steady.nextOrClose('puback');
      assert.equal((puback as unknown as { messageId: number } | null)?.messageId, 7, 'acknowledged, not closed');
    });

    test(`ingress ${transport} - at most maxConnectionsPerAddress connections from one address`, async () => {
      const before = await refused('connections_per_address');
      for (let i = 0; i < LIMITS.maxConnectionsPerAddress; i++) {
        const connection = await bare(transport, at(70));
        assert.equal(await connection.connect(uniqueName('many')), 0);
      }
      const extra = await bare(transport, at(70)).catch(() => null); // over WebSocket the upgrade may already fail
      if (extra) await waitFor(() => extra.closed, 'the connection past the limit to be closed', 2_000);
      assert.equal(await refused('connections_per_address'), before + 1);
      const elsewhere = await bare(transport, at(71));
      assert.equal(await elsewhere.connect(uniqueName('elsewhere')), 0);
    });
  });
}

test('ingress ws - a partial WebSocket message over maxConnectBytes before login is refused from its frame header', async () => {
  const before = await refused('connect_size');
  const attacker = await bare('ws', '127.0.3.1');
  // A frame announcing 100 KiB (within the WebSocket message limit of twice maxPacketBytes): ws would buffer it whole.
  attacker.sendPartial(Buffer.from(CONNECT_BODY_START), 100 * KiB);
  await waitFor(() => attacker.closed, 'the connection to be closed', 2_000);
  assert.equal(await refused('connect_size'), before + 1);
});
