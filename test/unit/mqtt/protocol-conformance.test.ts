import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConnectPacket } from 'aedes';
import mqttPacket from 'mqtt-packet';
import { encodeRemainingLength } from '../../../src/mqtt/packet-encoding.js';
import { connectFieldsBytes, connectViolation, PacketConformance, type ParsedPacket } from '../../../src/mqtt/protocol-conformance.js';
import { connectBytes, mqttString } from '../../helpers/mqtt-bytes.js';

const limits = { maxTopicBytes: 100, maxTopicLevels: 5 };

/** The packets the MQTT parser makes of these bytes (with `length`, the remaining length, as aedes gets it). */
function parse(bytes: Buffer): ParsedPacket[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: ParsedPacket[] = [];
  parser.on('packet', (packet) => packets.push(packet));
  parser.on('error', (error: Error) => assert.fail(`the parser refused the test's bytes: ${error.message}`));
  parser.parse(bytes);
  return packets;
}

const parseOne = (bytes: Buffer) => parse(bytes)[0]!;
const generate = (packet: Record<string, unknown>) => mqttPacket.generate(packet as unknown as mqttPacket.Packet, { protocolVersion: (packet.protocolVersion as 3 | 4 | 5 | undefined) ?? 4 });
const connectFields = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'device-1', keepalive: 60 };

test('connectFieldsBytes - equals the remaining length of every well-formed CONNECT the reference encoder writes', () => {
  const variants: Array<Record<string, unknown>> = [
    {},
    { clientId: '' },
    { clientId: 'é€😀-device' },
    { protocolId: 'MQIsdp', protocolVersion: 3 },
    { username: 'alice' },
    { username: '', password: Buffer.alloc(0) },
    { username: 'ünïcode', password: Buffer.from('s3cret') },
    { will: { topic: 'devices/alice/status', payload: Buffer.from('gone'), qos: 1, retain: true } },
    { will: { topic: 'd/€', payload: Buffer.alloc(0), qos: 0, retain: false }, username: 'u', password: Buffer.alloc(300, 1) },
    { will: { topic: 't', payload: Buffer.alloc(65_535, 2), qos: 2, retain: false } },
  ];
  for (const variant of variants) {
    const packet = parseOne(generate({ ...connectFields, ...variant })) as ConnectPacket;
    assert.equal(connectFieldsBytes(packet), packet.length, JSON.stringify(variant).slice(0, 80));
  }
});

test('connectFieldsBytes - with bytes that are not UTF-8 it is an upper bound of the remaining length', () => {
  for (const invalid of [[0xff], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xed, 0xa0, 0x80]]) {
    const packet = parseOne(connectBytes({ clientId: Buffer.from([0x61, ...invalid]) })) as ConnectPacket;
    assert.ok(connectFieldsBytes(packet) >= packet.length!, `bytes ${invalid.join(', ')}`);
  }
});

test('connectViolation - a well-formed CONNECT, with or without will, user name and password, passes', () => {
  assert.equal(connectViolation(parseOne(generate(connectFields)) as ConnectPacket, limits), null);
  const full = generate({ ...connectFields, username: 'alice', password: Buffer.from('pw'), will: { topic: 'devices/alice/status', payload: Buffer.from('x'), qos: 1, retain: true } });
  assert.equal(connectViolation(parseOne(full) as ConnectPacket, limits), null);
  assert.equal(connectViolation(parseOne(connectBytes({ protocolName: 'MQIsdp', level: 3, clientId: 'old' })) as ConnectPacket, limits), null);
  assert.equal(connectViolation(parseOne(generate({ ...connectFields, username: 'alice' })) as ConnectPacket, limits), null, 'a user name without a password is fine');
});

test('connectViolation - a will topic that is no topic name, or over the topic limits, is refused and counted by kind', () => {
  const withWill = (topic: Buffer, qos = 1) => parseOne(connectBytes({ clientId: 'd', will: { topic, payload: Buffer.from('bye'), qos } })) as ConnectPacket;
  const cases: Array<[Buffer, string]> = [
    [Buffer.from('devices/alice/commands/+'), 'invalid_topic'],
    [Buffer.from('devices/alice/#'), 'invalid_topic'],
    [Buffer.from('a+b'), 'invalid_topic'],
    [Buffer.from(''), 'invalid_topic'],
    [Buffer.from('a\u0000b'), 'invalid_topic'],
    [Buffer.from([0x61, 0xff, 0x62]), 'invalid_topic'],
    [Buffer.from('x'.repeat(101)), 'topic_length'],
    [Buffer.from('a/b/c/d/e/f'), 'topic_levels'],
  ];
  for (const [topic, limit] of cases) {
    const violation = connectViolation(withWill(topic), limits);
    assert.equal(violation?.limit, limit, JSON.stringify(topic.toString('latin1')));
    assert.match(violation.reason, /^will topic: /);
    assert.equal(violation.connackReturnCode, undefined, 'closed without a CONNACK');
  }
  assert.equal(connectViolation(withWill(Buffer.from('a/b/c/d/e')), limits), null, 'at the limits is fine');
  // Will flag with QoS 3 (bits 4-3 both set) [MQTT-3.1.2-14].
  assert.match(connectViolation(withWill(Buffer.from('a/b'), 3), limits)?.reason ?? '', /will QoS 3/);
});

test('connectViolation - a password without a user name, or a user name that is not UTF-8 or holds U+0000, is a protocol violation', () => {
  const passwordOnly = parseOne(connectBytes({ clientId: 'd', password: 'pw' })) as ConnectPacket;
  assert.deepEqual(connectViolation(passwordOnly, limits), { limit: 'protocol_violation', reason: 'a password without a user name [MQTT-3.1.2-22]' });
  for (const username of [Buffer.from([0x61, 0xff]), Buffer.from('a\u0000b')]) {
    const packet = parseOne(connectBytes({ clientId: 'd', username })) as ConnectPacket;
    assert.equal(connectViolation(packet, limits)?.limit, 'protocol_violation');
  }
});

test('connectViolation - a protocol name with the other version\'s level gets CONNACK 1; MQTT level 5 is left to aedes', () => {
  const mqisdpLevel5 = generate({ ...connectFields, protocolId: 'MQIsdp', protocolVersion: 5 });
  for (const [name, level, bytes] of [['MQIsdp', 4, connectBytes({ protocolName: 'MQIsdp', level: 4 })], ['MQTT', 3, connectBytes({ level: 3 })], ['MQIsdp', 5, mqisdpLevel5]] as const) {
    const violation = connectViolation(parseOne(bytes) as ConnectPacket, limits);
    assert.equal(violation?.connackReturnCode, 1, `${name} ${level}`);
    assert.equal(violation?.limit, 'protocol_violation');
  }
  const v5 = parseOne(generate({ ...connectFields, protocolVersion: 5 })) as ConnectPacket;
  assert.equal(connectViolation(v5, limits), null);
});

test('connectViolation - bytes after the last field are malformed, one byte or a megabyte', () => {
  for (const extra of [1, 10, 1 << 20]) {
    const packet = parseOne(connectBytes({ clientId: 'd', trailing: Buffer.alloc(extra) })) as ConnectPacket;
    assert.deepEqual(connectViolation(packet, limits), {
      limit: 'protocol_violation',
      reason: `${extra} bytes after the fields of the CONNECT (malformed remaining length)`,
    });
  }
  const withEverything = connectBytes({ clientId: 'd', will: { topic: 'w/t', payload: Buffer.from('p') }, username: 'u', password: 'pw', trailing: Buffer.from([0]) });
  assert.equal(connectViolation(parseOne(withEverything) as ConnectPacket, limits)?.reason, '1 bytes after the fields of the CONNECT (malformed remaining length)');
});

test('PacketConformance - CONNECT first and only once; no packet only a server sends', () => {
  const conformance = new PacketConformance(limits);
  assert.match(conformance.check(parseOne(generate({ cmd: 'pingreq' })))?.reason ?? '', /PINGREQ before CONNECT \[MQTT-3\.1\.0-1\]/);
  assert.equal(conformance.check(parseOne(generate(connectFields))), null);
  assert.equal(conformance.check(parseOne(generate({ cmd: 'pingreq' }))), null);
  assert.match(conformance.check(parseOne(generate(connectFields)))?.reason ?? '', /second CONNECT \[MQTT-3\.1\.0-2\]/);
  for (const packet of [{ cmd: 'connack', returnCode: 0, sessionPresent: false }, { cmd: 'suback', messageId: 1, granted: [0] }, { cmd: 'unsuback', messageId: 1 }, { cmd: 'pingresp' }]) {
    assert.equal(conformance.check(parseOne(generate(packet)))?.limit, 'protocol_violation', packet.cmd);
  }
});

test('PacketConformance - SUBSCRIBE and UNSUBSCRIBE need a non-zero identifier, a filter, and well-formed filters', () => {
  const conformance = new PacketConformance(limits);
  conformance.check(parseOne(generate(connectFields)));
  const subscribe = (messageId: number, filters: Buffer[]) =>
    parseOne(Buffer.concat([Buffer.from([0x82]), encodeRemainingLength(2 + filters.reduce((n, f) => n + f.length + 3, 0)), Buffer.from([messageId >> 8, messageId & 0xff]), ...filters.map((f) => Buffer.concat([mqttString(f), Buffer.from([1])]))]));
  const unsubscribe = (messageId: number, filters: Buffer[]) =>
    parseOne(Buffer.concat([Buffer.from([0xa2]), encodeRemainingLength(2 + filters.reduce((n, f) => n + f.length + 2, 0)), Buffer.from([messageId >> 8, messageId & 0xff]), ...filters.map(mqttString)]));
  for (const make of [subscribe, unsubscribe]) {
    assert.equal(conformance.check(make(1, [Buffer.from('a/+/c'), Buffer.from('#'), Buffer.from('x'.repeat(200))])), null, 'over a limit is 0x80, not a violation');
    assert.match(conformance.check(make(0, [Buffer.from('a')]))?.reason ?? '', /identifier 0 \[MQTT-2\.3\.1-1\]/);
    assert.match(conformance.check(make(1, []))?.reason ?? '', /without a filter/);
    for (const filter of ['', 'a+', '+a', 'a#', 'a/#/b', '#/', 'a\u0000']) {
      assert.equal(conformance.check(make(1, [Buffer.from('ok'), Buffer.from(filter)]))?.limit, 'invalid_topic', JSON.stringify(filter));
    }
    assert.equal(conformance.check(make(1, [Buffer.from([0x61, 0xfe])]))?.limit, 'invalid_topic', 'not UTF-8');
  }
});

test('PacketConformance - a PUBLISH needs a topic name, and a non-zero identifier at QoS 1 and 2', () => {
  const conformance = new PacketConformance(limits);
  conformance.check(parseOne(generate(connectFields)));
  const publish = (topic: string, qos: 0 | 1 | 2, messageId?: number) => parseOne(generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos, messageId, retain: false, dup: false }));
  assert.equal(conformance.check(publish('a/b', 0)), null);
  assert.equal(conformance.check(publish('a/b', 1, 7)), null);
  assert.match(conformance.check(publish('a/b', 1, 0))?.reason ?? '', /identifier 0/);
  assert.match(conformance.check(publish('a/b', 2, 0))?.reason ?? '', /identifier 0/);
  assert.equal(conformance.check(publish('a/+', 0))?.limit, 'invalid_topic');
  assert.equal(conformance.check(publish('#', 1, 3))?.limit, 'invalid_topic');
});

test('PacketConformance - acknowledgements, PINGREQ and DISCONNECT must have exactly their remaining length', () => {
  const conformance = new PacketConformance(limits);
  conformance.check(parseOne(generate(connectFields)));
  assert.equal(conformance.check(parseOne(Buffer.from([0x40, 2, 0, 1]))), null);
  assert.equal(conformance.check(parseOne(Buffer.from([0x62, 2, 0, 1]))), null);
  assert.equal(conformance.check(parseOne(Buffer.from([0xc0, 0]))), null);
  assert.match(conformance.check(parseOne(Buffer.from([0x40, 3, 0, 1, 0])))?.reason ?? '', /PUBACK with a remaining length of 3 instead of 2/);
  assert.match(conformance.check(parseOne(Buffer.from([0x70, 4, 0, 1, 0, 0])))?.reason ?? '', /PUBCOMP/);
  assert.match(conformance.check(parseOne(Buffer.from([0xc0, 1, 0])))?.reason ?? '', /PINGREQ with a remaining length of 1 instead of 0/);
  assert.match(conformance.check(parseOne(Buffer.from([0xe0, 1, 0])))?.reason ?? '', /DISCONNECT/);
});
