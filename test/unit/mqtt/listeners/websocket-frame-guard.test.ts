import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocketFrameGuard } from '../../../../src/mqtt/listeners/websocket-frame-guard.js';

const BINARY = 0x02;
const CONTINUATION = 0x00;
const PING = 0x09;

/** One frame as a client sends it (masked unless told) [RFC 6455 5.2]. */
function frame(payloadLength: number, options: { opcode?: number; fin?: boolean; mask?: boolean } = {}, payload = Buffer.alloc(payloadLength, 0x61)): Buffer {
  const mask = options.mask ?? true;
  const lengthBytes = payloadLength < 126 ? 0 : payloadLength < 65_536 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + (mask ? 4 : 0));
  header[0] = ((options.fin ?? true) ? 0x80 : 0) | (options.opcode ?? BINARY);
  header[1] = (mask ? 0x80 : 0) | (lengthBytes === 0 ? payloadLength : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(payloadLength, 2);
  if (lengthBytes === 8) header.writeBigUInt64BE(BigInt(payloadLength), 2);
  // The masking key is 0: the payload's bytes stay as they are, which is all these tests need.
  return Buffer.concat([header, payload]);
}

/** The size of a frame's header for a payload of this length (masked). */
function headerSize(payloadLength: number): number {
  return (payloadLength < 126 ? 2 : payloadLength < 65_536 ? 4 : 10) + 4;
}

test('WebSocketFrameGuard - the examples of RFC 6455 5.7 are read as the RFC says', () => {
  const hello = Buffer.from([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]); // masked "Hello"
  const fragmented = Buffer.from([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]); // "Hel" + "lo", unmasked
  const ping = Buffer.from([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
  const binary256 = Buffer.concat([Buffer.from([0x82, 0x7e, 0x01, 0x00]), Buffer.alloc(256)]);
  const binary64k = Buffer.concat([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]), Buffer.alloc(65_536)]);
  const guard = new WebSocketFrameGuard(65_536);
  for (const [name, bytes, payload] of [['hello', hello, 5], ['fragmented', fragmented, 5], ['ping', ping, 0], ['256', binary256, 256], ['64 KiB', binary64k, 65_536]] as const) {
    const before = guard.pendingEnd;
    assert.equal(guard.check(bytes), null, name);
    assert.equal(guard.incompleteBytes, 0, name);
    assert.equal(guard.pendingEnd - before, payload, `${name}: data payload bytes (a ping's are not)`);
  }
  assert.equal(new WebSocketFrameGuard(65_535).check(binary64k.subarray(0, 10)), 65_536);
  // The test frames below are built the same way.
  assert.deepEqual(frame(256, { mask: false }, Buffer.alloc(256)), binary256);
  assert.deepEqual(frame(65_536, { mask: false }, Buffer.alloc(65_536)), binary64k);
  assert.equal(frame(10).length, 2 + 4 + 10);
});

test('WebSocketFrameGuard - whole messages within the limit give null and leave nothing incomplete', () => {
  const guard = new WebSocketFrameGuard(100_000);
  const stream = Buffer.concat([frame(10), frame(200), frame(70_000), frame(0), frame(5, { mask: false })]);
  assert.equal(guard.check(stream), null);
  assert.equal(guard.incompleteBytes, 0);
  assert.equal(guard.pendingEnd, 10 + 200 + 70_000 + 0 + 5, 'payload bytes, not frame headers');
});

test('WebSocketFrameGuard - a message over the limit is refused from its frame header, with every length encoding', () => {
  for (const [length, limit] of [[100, 99], [1_000, 999], [70_000, 69_999]] as const) {
    const header = frame(length).subarray(0, headerSize(length));
    assert.equal(new WebSocketFrameGuard(limit).check(header), length, `payload ${length}`);
    assert.equal(new WebSocketFrameGuard(length).check(header), null, `payload ${length} at the limit`);
  }
});

test('WebSocketFrameGuard - a header split anywhere is read right', () => {
  const header = frame(70_000).subarray(0, 14); // 2 bytes, 8 of length, 4 of mask
  for (let split = 1; split < header.length; split++) {
    const guard = new WebSocketFrameGuard(69_999);
    if (split >= 10) {
      assert.equal(guard.check(header.subarray(0, split)), 70_000, `split at ${split}, after the length`);
      continue;
    }
    assert.equal(guard.check(header.subarray(0, split)), null, `split at ${split}`);
    assert.equal(guard.check(header.subarray(split)), 70_000, `split at ${split}`);
  }
});

test('WebSocketFrameGuard - a fragmented message counts all its fragments against the limit', () => {
  const guard = new WebSocketFrameGuard(1_000);
  assert.equal(guard.check(frame(600, { fin: false })), null);
  assert.equal(guard.incompleteBytes, 600, 'the message is open between fragments');
  assert.equal(guard.check(frame(5, { opcode: PING })), null, 'a control frame between fragments is not part of the message');
  assert.equal(guard.incompleteBytes, 600);
  assert.equal(guard.check(frame(401, { opcode: CONTINUATION }).subarray(0, 6)), 1_001);
});

test('WebSocketFrameGuard - fragments within the limit complete the message; the next one starts from zero', () => {
  const guard = new WebSocketFrameGuard(1_000);
  assert.equal(guard.check(Buffer.concat([frame(600, { fin: false }), frame(400, { opcode: CONTINUATION })])), null);
  assert.equal(guard.incompleteBytes, 0);
  assert.equal(guard.check(frame(1_000)), null);
  assert.equal(guard.pendingEnd, 2_000);
});

test('WebSocketFrameGuard - a message cut by the end of a chunk: its announced size, where it ends, whether it began in that chunk', () => {
  const guard = new WebSocketFrameGuard(1_000_000);
  const big = frame(500_000);
  assert.equal(guard.check(Buffer.concat([frame(10), big.subarray(0, 1_000)])), null);
  assert.equal(guard.incompleteBytes, 500_000);
  assert.equal(guard.pendingEnd, 500_010);
  assert.equal(guard.incompleteStartedInLastChunk, true);
  assert.equal(guard.check(big.subarray(1_000, 2_000)), null);
  assert.equal(guard.incompleteStartedInLastChunk, false);
  assert.equal(guard.incompleteBytes, 500_000);
  assert.equal(guard.check(big.subarray(2_000)), null);
  assert.equal(guard.incompleteBytes, 0);
  assert.equal(guard.pendingEnd, 500_010);
});

test('WebSocketFrameGuard - a fragmented message stays the same unit across its fragments', () => {
  const guard = new WebSocketFrameGuard(1_000);
  assert.equal(guard.check(frame(100, { fin: false })), null);
  assert.equal(guard.incompleteStartedInLastChunk, true);
  assert.equal(guard.check(frame(100, { opcode: CONTINUATION, fin: false })), null);
  assert.equal(guard.incompleteStartedInLastChunk, false, 'a further fragment does not begin a new message');
  assert.equal(guard.incompleteBytes, 200);
  assert.equal(guard.check(frame(3, { opcode: PING })), null);
  assert.equal(guard.incompleteStartedInLastChunk, false, 'nor does a ping between fragments');
});

test('WebSocketFrameGuard - inside a header, the bytes read of it are incomplete', () => {
  const guard = new WebSocketFrameGuard(1_000_000);
  assert.equal(guard.check(frame(70_000).subarray(0, 3)), null);
  assert.equal(guard.incompleteBytes, 3);
  assert.equal(guard.incompleteStartedInLastChunk, true);
});

test('WebSocketFrameGuard - a payload that looks like a frame header is not taken for one', () => {
  const payload = Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  const bytes = frame(payload.length, { mask: false }, payload);
  const guard = new WebSocketFrameGuard(100);
  assert.equal(guard.check(bytes), null);
  for (const byte of bytes) assert.equal(new WebSocketFrameGuard(100).check(Buffer.from([byte])), null);
});

test('WebSocketFrameGuard - a 64-bit length over 2^53 - 1 is refused as malformed (-1)', () => {
  const header = Buffer.from([0x82, 0xff, 0x00, 0x20, 0, 0, 0, 0, 0, 0]);
  assert.equal(new WebSocketFrameGuard(Number.MAX_SAFE_INTEGER).check(header), -1);
  const top = Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(new WebSocketFrameGuard(Number.MAX_SAFE_INTEGER).check(top), -1);
  const largest = Buffer.from([0x82, 0xff, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(new WebSocketFrameGuard(100).check(largest), Number.MAX_SAFE_INTEGER);
});

test('WebSocketFrameGuard - every way of splitting a stream in two gives the same answer', () => {
  const stream = Buffer.concat([frame(10), frame(130, { fin: false }), frame(2, { opcode: PING }), frame(20, { opcode: CONTINUATION }), frame(300).subarray(0, 8)]);
  for (let split = 0; split <= stream.length; split++) {
    const guard = new WebSocketFrameGuard(299);
    const first = guard.check(stream.subarray(0, split));
    const answer = first ?? guard.check(stream.subarray(split));
    assert.equal(answer, 300, `split at ${split}`);
  }
});
