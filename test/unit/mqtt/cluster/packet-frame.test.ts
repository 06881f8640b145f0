import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrame, encodeFrame } from '../../../../src/mqtt/cluster/packet-frame.js';

test('packet frame - a publish crosses with its exact bytes, QoS, flags, broker id and counter, and client id', () => {
  const payload = Buffer.from([0, 1, 2, 255, 0xc3, 0x28]);
  for (const qos of [0, 1, 2] as const) {
    const frame = encodeFrame('instance-a', { topic: 'dévices/1/ü', payload, qos, retain: qos === 1, dup: qos === 2, brokerId: 'broker-a', brokerCounter: 42, clientId: 'c1' });
    const { origin, packet } = decodeFrame(frame);
    assert.equal(origin, 'instance-a');
    assert.deepEqual(packet, { cmd: 'publish', topic: 'dévices/1/ü', payload, qos, retain: qos === 1, dup: qos === 2, brokerId: 'broker-a', brokerCounter: 42, clientId: 'c1' });
  }
});

test('packet frame - a string payload, no payload, and no broker id or client id', () => {
  assert.deepEqual(decodeFrame(encodeFrame('o', { topic: 't', payload: '{"a":1}' })).packet.payload, Buffer.from('{"a":1}'));
  const { packet } = decodeFrame(encodeFrame('o', { topic: 't' }));
  assert.deepEqual(packet, { cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false, brokerId: undefined, brokerCounter: undefined });
  assert.equal('clientId' in packet, false);
});

test('packet frame - what this version did not write is refused with BRIDGE_ERR_INTERNAL', () => {
  const good = encodeFrame('o', { topic: 't', payload: Buffer.from('x') });
  const broken = [Buffer.alloc(0), Buffer.from([2, 0, 0, 0]), Buffer.concat([Buffer.from([1, 3]), good.subarray(2)]), good.subarray(0, 6), Buffer.from([1, 0, 0, 2, 0x7b, 0x7d])];
  for (const frame of broken) assert.throws(() => decodeFrame(frame), { code: 'BRIDGE_ERR_INTERNAL' }, frame.toString('hex'));
  const header = Buffer.from(JSON.stringify(['o', '', null, null, null]));
  const empty = Buffer.concat([Buffer.from([1, 0, 0, header.length]), header]);
  assert.throws(() => decodeFrame(empty), { code: 'BRIDGE_ERR_INTERNAL' }, 'an empty topic');
});
