import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodePacket, encodePacket } from '../../../../src/mqtt/redis/packet-codec.js';

test('packet codec - a PUBLISH comes back field for field, its payload byte for byte; a PUBREL without a payload', () => {
  const payload = Buffer.from([0, 1, 2, 255, 0x7b, 0x22]);
  const publish = { cmd: 'publish', topic: 'a/é/"x"', payload, qos: 2, retain: true, dup: false, messageId: 7, brokerId: 'b-1', brokerCounter: 42, clientId: 'dev/1' };
  assert.deepEqual(decodePacket(encodePacket(publish)), publish);
  assert.deepEqual(decodePacket(encodePacket({ cmd: 'pubrel', messageId: 3 })), { cmd: 'pubrel', messageId: 3 });
  assert.deepEqual(decodePacket(encodePacket({ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 0 })).payload, Buffer.alloc(0));
  assert.deepEqual(decodePacket(encodePacket({ cmd: 'publish', topic: 't', payload: 'text' as unknown as Buffer })).payload, Buffer.from('text'));
});

test('packet codec - a kept payload holds memory of its own, exactly its size (not the reply, not a pool slab)', () => {
  const decoded = decodePacket(encodePacket({ cmd: 'publish', topic: 't', payload: Buffer.from('small') }));
  assert.equal(decoded.payload!.buffer.byteLength, 5);
});

test('packet codec - something that is not a stored packet is a BRIDGE_ERR_INTERNAL', () => {
  for (const bad of [Buffer.alloc(2), Buffer.from([0, 0, 0, 9, 0x7b]), Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('{}')])]) {
    assert.throws(() => decodePacket(bad), { code: 'BRIDGE_ERR_INTERNAL' });
  }
});
