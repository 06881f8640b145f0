import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { encodeConnackRefusal, encodeRemainingLength, encodeSuback } from '../../../src/mqtt/packet-encoding.js';

function parseOne(bytes: Buffer): Record<string, unknown> {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Array<Record<string, unknown>> = [];
  parser.on('packet', (packet) => packets.push(packet as unknown as Record<string, unknown>));
  parser.on('error', (error: Error) => assert.fail(error.message));
  assert.equal(parser.parse(bytes), 0, 'every byte is one packet');
  assert.equal(packets.length, 1);
  return packets[0]!;
}

test('encodeSuback - what the reference parser reads back, with a one- and a two-byte remaining length', () => {
  const short = parseOne(encodeSuback(0x1234, [1, 0x80, 2]));
  assert.deepEqual([short.cmd, short.messageId, short.granted], ['suback', 0x1234, [1, 0x80, 2]]);
  const codes = Array.from({ length: 300 }, (_, i) => [0, 1, 2, 0x80][i % 4]!);
  const long = parseOne(encodeSuback(65_535, codes));
  assert.deepEqual([long.messageId, long.granted], [65_535, codes]);
  assert.equal(encodeSuback(1, codes).length, 1 + 2 + 2 + 300);
});

test('encodeConnackRefusal - a CONNACK with this return code and no session', () => {
  const connack = parseOne(encodeConnackRefusal(1));
  assert.deepEqual([connack.cmd, connack.returnCode, connack.sessionPresent], ['connack', 1, false]);
});

test('encodeRemainingLength - the boundaries of 1 to 4 bytes [MQTT-2.2.3]', () => {
  const cases: Array<[number, number[]]> = [
    [0, [0x00]],
    [127, [0x7f]],
    [128, [0x80, 0x01]],
    [16_383, [0xff, 0x7f]],
    [16_384, [0x80, 0x80, 0x01]],
    [2_097_151, [0xff, 0xff, 0x7f]],
    [2_097_152, [0x80, 0x80, 0x80, 0x01]],
    [268_435_455, [0xff, 0xff, 0xff, 0x7f]],
  ];
  for (const [length, bytes] of cases) assert.deepEqual([...encodeRemainingLength(length)], bytes, String(length));
});
