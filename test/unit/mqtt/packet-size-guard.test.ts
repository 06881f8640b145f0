import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { PacketSizeGuard } from '../../../src/mqtt/packet-size-guard.js';

/** A QoS 0 PUBLISH whose remaining length is exactly `remainingLength` (topic 't': 2 + 1 bytes). */
function publish(remainingLength: number): Buffer {
  const payload = Buffer.alloc(remainingLength - 3, 0x61);
  const packet = mqttPacket.generate({ cmd: 'publish', topic: 't', payload, qos: 0, retain: false, dup: false });
  return packet;
}

/** How many bytes the fixed header (type byte + remaining length) of `packet` takes. */
function headerLength(packet: Buffer): number {
  let i = 1;
  while ((packet[i]! & 0x80) !== 0) i++;
  return i + 1;
}

const connect = mqttPacket.generate({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId: 'device-1',
  keepalive: 60,
});
const pingreq = mqttPacket.generate({ cmd: 'pingreq' });

function feedEachByte(guard: PacketSizeGuard, data: Buffer): Array<number | null> {
  const results: Array<number | null> = [];
  for (const byte of data) results.push(guard.check(Buffer.from([byte])));
  return results;
}

test('PacketSizeGuard - the test packets have the remaining lengths and header sizes they are meant to', () => {
  assert.deepEqual([...pingreq], [0xc0, 0x00]);
  assert.equal(connect[0], 0x10);
  assert.equal(connect[1], connect.length - 2);
  const cases: Array<[number, number]> = [
    [3, 2],
    [127, 2],
    [128, 3],
    [16_383, 3],
    [16_384, 4],
  ];
  for (const [remaining, header] of cases) {
    const packet = publish(remaining);
    assert.equal(headerLength(packet), header, `remaining ${remaining}`);
    assert.equal(packet.length, remaining + header, `remaining ${remaining}`);
  }
});

test('PacketSizeGuard - whole packets within the limit give null', () => {
  const guard = new PacketSizeGuard(1_000);
  assert.equal(guard.check(connect), null);
  assert.equal(guard.check(publish(10)), null);
  assert.equal(guard.check(publish(999)), null);
  assert.equal(guard.check(pingreq), null);
  assert.equal(guard.check(publish(200)), null);
});

test('PacketSizeGuard - an empty chunk changes nothing', () => {
  const guard = new PacketSizeGuard(100);
  assert.equal(guard.check(Buffer.alloc(0)), null);
  const big = publish(500);
  assert.equal(guard.check(big.subarray(0, 1)), null);
  assert.equal(guard.check(Buffer.alloc(0)), null);
  assert.equal(guard.check(big.subarray(1, 3)), 500);
});

test('PacketSizeGuard - a packet exactly at the limit passes, one byte more is refused with its length', () => {
  assert.equal(new PacketSizeGuard(200).check(publish(200)), null);
  assert.equal(new PacketSizeGuard(200).check(publish(201)), 201);
  assert.equal(new PacketSizeGuard(127).check(publish(127)), null);
  assert.equal(new PacketSizeGuard(127).check(publish(128)), 128);
  assert.equal(new PacketSizeGuard(16_383).check(publish(16_383)), null);
  assert.equal(new PacketSizeGuard(16_383).check(publish(16_384)), 16_384);
});

test('PacketSizeGuard - a limit of 0 lets only zero-length packets through', () => {
  const guard = new PacketSizeGuard(0);
  assert.equal(guard.check(Buffer.concat([pingreq, pingreq])), null);
  assert.equal(guard.check(publish(3).subarray(0, 2)), 3);
});

test('PacketSizeGuard - several packets in one chunk give null when all are within the limit', () => {
  const guard = new PacketSizeGuard(500);
  const stream = Buffer.concat([connect, publish(100), pingreq, publish(500), pingreq, pingreq, publish(3)]);
  assert.equal(guard.check(stream), null);
  // And it is still in step afterwards.
  assert.equal(guard.check(publish(501).subarray(0, 3)), 501);
});

test('PacketSizeGuard - an oversized packet after valid ones in the same chunk is found', () => {
  const guard = new PacketSizeGuard(500);
  const stream = Buffer.concat([connect, publish(100), pingreq, publish(500), publish(777)]);
  assert.equal(guard.check(stream), 777);
});

test('PacketSizeGuard - the announced length is returned from the header alone, before the payload', () => {
  const cases: Array<[number, number]> = [
    // [remaining length, limit]
    [50, 10], // 1 length byte
    [300, 200], // 2 length bytes
    [20_000, 16_000], // 3 length bytes
    [2_100_000, 2_000_000], // 4 length bytes
  ];
  for (const [remaining, limit] of cases) {
    const packet = publish(remaining);
    const header = packet.subarray(0, headerLength(packet));
    assert.ok(header.length >= 2 && header.length <= 5);
    assert.equal(new PacketSizeGuard(limit).check(header), remaining, `remaining ${remaining}, header of ${header.length} bytes`);
  }
});

test('PacketSizeGuard - a header split inside the remaining-length bytes is still read right', () => {
  const packet = publish(2_100_000); // header 0x30 + 4 length bytes
  const header = packet.subarray(0, 5);
  for (let split = 1; split < 5; split++) {
    const guard = new PacketSizeGuard(2_000_000);
    assert.equal(guard.check(header.subarray(0, split)), null, `split at ${split}`);
    assert.equal(guard.check(header.subarray(split)), 2_100_000, `split at ${split}`);
  }
  const medium = publish(300).subarray(0, 3); // 0x30 0xac 0x02
  const guard = new PacketSizeGuard(299);
  assert.equal(guard.check(medium.subarray(0, 2)), null);
  assert.equal(guard.check(medium.subarray(2)), 300);
});

test('PacketSizeGuard - a stream fed byte by byte gives null everywhere within the limit', () => {
  const guard = new PacketSizeGuard(300);
  const stream = Buffer.concat([connect, publish(130), pingreq, publish(300), publish(3), pingreq]);
  const results = feedEachByte(guard, stream);
  assert.equal(results.length, stream.length);
  assert.ok(results.every((r) => r === null));
});

test('PacketSizeGuard - byte by byte, the oversized packet is reported on its last length byte', () => {
  const guard = new PacketSizeGuard(300);
  const before = Buffer.concat([connect, publish(130), pingreq, publish(300)]);
  const big = publish(20_000);
  const results = feedEachByte(guard, Buffer.concat([before, big.subarray(0, 4)]));
  const expected: Array<number | null> = results.map(() => null);
  expected[expected.length - 1] = 20_000;
  assert.deepEqual(results, expected);
});

test('PacketSizeGuard - every way of splitting a stream in two gives the same answer', () => {
  const ok = Buffer.concat([connect, publish(3), pingreq, publish(128), pingreq, publish(250)]);
  const big = publish(16_384);
  const stream = Buffer.concat([ok, big.subarray(0, 4)]);
  const lastLengthByte = stream.length - 1;
  for (let split = 0; split <= stream.length; split++) {
    const guard = new PacketSizeGuard(250);
    const first = guard.check(stream.subarray(0, split));
    if (split > lastLengthByte) {
      assert.equal(first, 16_384, `split at ${split}`);
    } else {
      assert.equal(first, null, `split at ${split}`);
      assert.equal(guard.check(stream.subarray(split)), 16_384, `split at ${split}`);
    }
  }
});

test('PacketSizeGuard - a payload split across many chunks is skipped, and the next header is read', () => {
  const guard = new PacketSizeGuard(5_000);
  const first = publish(4_000);
  assert.equal(guard.check(first.subarray(0, 10)), null);
  assert.equal(guard.check(first.subarray(10, 1_000)), null);
  assert.equal(guard.check(first.subarray(1_000, 3_999)), null);
  // The last byte of the first packet and the header of the next, in one chunk.
  assert.equal(guard.check(Buffer.concat([first.subarray(3_999), publish(6_000).subarray(0, 3)])), 6_000);
});

test('PacketSizeGuard - a payload byte that looks like a header is not taken for one', () => {
  // The payload is made of 0x30 0xff 0xff 0xff 0x7f, which as a header would announce 268,435,455.
  const payload = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f, 0x30, 0xff, 0xff, 0xff, 0xff]);
  const packet = mqttPacket.generate({ cmd: 'publish', topic: 't', payload, qos: 0, retain: false, dup: false });
  const guard = new PacketSizeGuard(100);
  assert.equal(guard.check(packet), null);
  assert.ok(feedEachByte(new PacketSizeGuard(100), packet).every((r) => r === null));
});

test('PacketSizeGuard - zero-length packets (pingreq) are handled: the next packet header is read right', () => {
  const guard = new PacketSizeGuard(10);
  assert.equal(guard.check(pingreq), null);
  assert.equal(guard.check(Buffer.concat([pingreq, pingreq, pingreq])), null);
  assert.ok(feedEachByte(guard, Buffer.concat([pingreq, pingreq])).every((r) => r === null));
  assert.equal(guard.check(publish(10)), null);
  assert.equal(guard.check(Buffer.concat([pingreq, publish(11).subarray(0, 2)])), 11);
});

test('PacketSizeGuard - a remaining length with a fifth length byte is malformed: -1', () => {
  assert.equal(new PacketSizeGuard(1_000).check(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff])), -1);
  // Even with a huge limit: the length itself is malformed.
  assert.equal(new PacketSizeGuard(Number.MAX_SAFE_INTEGER).check(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80])), -1);
  // Split byte by byte: -1 on the fourth length byte, which still has its continuation bit.
  assert.deepEqual(feedEachByte(new PacketSizeGuard(1_000), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff])), [null, null, null, null, -1]);
  // After a valid packet in the same chunk.
  assert.equal(new PacketSizeGuard(1_000).check(Buffer.concat([publish(20), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])])), -1);
});

test('PacketSizeGuard - the largest valid remaining length (4 bytes, 268,435,455) is not malformed', () => {
  const header = Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]);
  assert.equal(new PacketSizeGuard(1_000).check(header), 268_435_455);
  assert.equal(new PacketSizeGuard(268_435_455).check(header), null);
});

test('PacketSizeGuard - between packets nothing is incomplete, and pendingEnd is every byte read', () => {
  const guard = new PacketSizeGuard(1_000);
  const stream = Buffer.concat([connect, publish(100), pingreq]);
  assert.equal(guard.check(stream), null);
  assert.equal(guard.incompleteBytes, 0);
  assert.equal(guard.pendingEnd, stream.length);
  assert.equal(guard.check(pingreq), null);
  assert.equal(guard.pendingEnd, stream.length + 2);
});

test('PacketSizeGuard - a packet cut by the end of a chunk: its announced size, where it ends, and whether it began in that chunk', () => {
  const guard = new PacketSizeGuard(100_000);
  const big = publish(20_000); // header of 4 bytes
  assert.equal(guard.check(Buffer.concat([connect, big.subarray(0, 100)])), null);
  assert.equal(guard.incompleteBytes, 20_004);
  assert.equal(guard.pendingEnd, connect.length + 20_004);
  assert.equal(guard.incompleteStartedInLastChunk, true);
  assert.equal(guard.check(big.subarray(100, 5_000)), null);
  assert.equal(guard.incompleteBytes, 20_004, 'the same packet, still incomplete');
  assert.equal(guard.incompleteStartedInLastChunk, false);
  assert.equal(guard.pendingEnd, connect.length + 20_004);
  // Its end and the start of the next, in one chunk.
  assert.equal(guard.check(Buffer.concat([big.subarray(5_000), publish(50).subarray(0, 10)])), null);
  assert.equal(guard.incompleteBytes, 52);
  assert.equal(guard.incompleteStartedInLastChunk, true);
  assert.equal(guard.check(publish(50).subarray(10)), null);
  assert.equal(guard.incompleteBytes, 0);
  assert.equal(guard.pendingEnd, connect.length + 20_004 + 52);
});

test('PacketSizeGuard - inside a fixed header, what is read of it is incomplete; the full size once the length is known', () => {
  const guard = new PacketSizeGuard(100_000);
  const big = publish(20_000);
  assert.equal(guard.check(big.subarray(0, 2)), null);
  assert.equal(guard.incompleteBytes, 2);
  assert.equal(guard.pendingEnd, 2, 'the length is not known yet');
  assert.equal(guard.incompleteStartedInLastChunk, true);
  assert.equal(guard.check(big.subarray(2, 4)), null);
  assert.equal(guard.incompleteBytes, 20_004);
  assert.equal(guard.pendingEnd, 20_004);
  assert.equal(guard.incompleteStartedInLastChunk, false);
});

test('PacketSizeGuard - a limit given with a chunk applies to the packets whose header is in it', () => {
  const guard = new PacketSizeGuard(1_000);
  assert.equal(guard.check(publish(500), 600), null);
  assert.equal(guard.check(publish(601).subarray(0, 3), 600), 601);
  const other = new PacketSizeGuard(1_000);
  assert.equal(other.check(publish(900).subarray(0, 10), 1_000), null);
  assert.equal(other.check(publish(900).subarray(10), 100), null, 'the rest of a packet already announced');
  assert.equal(other.check(publish(900)), null, 'the guard\'s own limit again');
});
