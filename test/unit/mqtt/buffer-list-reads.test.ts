import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readBufferListsDirectly } from '../../../src/mqtt/buffer-list-reads.js';

const fromMqttPacket = createRequire(createRequire(createRequire(import.meta.url).resolve('aedes')).resolve('mqtt-packet'));
interface List {
  append: (this: List, buffer: Buffer) => List;
  consume: (this: List, bytes: number) => List;
  readUInt8: (this: List, offset?: number) => number;
  readUInt16BE: (this: List, offset?: number) => number;
  readUInt32BE: (this: List, offset?: number) => number;
  toString: (this: List, encoding?: BufferEncoding, start?: number, end?: number) => string;
  length: number;
}
const { BufferList, BufferListStream } = fromMqttPacket('bl') as { BufferList: (new () => List) & { prototype: List }; BufferListStream: { prototype: List } };
const bl = BufferList.prototype;
const blStream = BufferListStream.prototype;
const original = { readUInt8: bl.readUInt8, readUInt16BE: bl.readUInt16BE, readUInt32BE: bl.readUInt32BE, toString: bl.toString };
const originalOfStream = blStream.readUInt8;
readBufferListsDirectly();
const mqttPacket = fromMqttPacket('mqtt-packet') as {
  parser: (options?: object) => { parse(chunk: Buffer): number; on(event: string, listener: (value: unknown) => void): void };
  generate: (packet: object) => Buffer;
};

/** What a call gives, its error's code included, so that direct and original compare. */
function outcome(call: () => unknown): unknown {
  try {
    return call();
  } catch (error) {
    return `threw ${(error as { code?: string }).code ?? (error as Error).name}`;
  }
}

test('readBufferListsDirectly - replaces the reads of the buffer list mqtt-packet parses from, once', () => {
  assert.notEqual(bl.readUInt8, original.readUInt8);
  assert.notEqual(blStream.readUInt8, originalOfStream);
  const parserList = (mqttPacket.parser() as unknown as { _list: List })._list;
  assert.equal(parserList.readUInt8, blStream.readUInt8, "the parser's list reads directly");
  assert.notEqual(parserList.readUInt8, originalOfStream);
  const installed = bl.readUInt16BE;
  assert.equal(readBufferListsDirectly(), true);
  assert.equal(bl.readUInt16BE, installed);
});

test('readBufferListsDirectly - every read and toString gives what bl gives, across buffer boundaries, out of range and with odd offsets', () => {
  let seed = 5;
  const random = (below: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % below;
  };
  const text = Buffer.from('topic/é/€/😀/levels and more text', 'utf8');
  for (let round = 0; round < 200; round++) {
    const list = new BufferList();
    const chunks = 1 + random(4);
    for (let c = 0; c < chunks; c++) list.append(random(3) === 0 ? text.subarray(random(text.length)) : Buffer.from(Array.from({ length: random(9) }, () => random(256))));
    if (random(3) === 0 && list.length > 0) list.consume(random(list.length));
    const offsets = [0, 1, 2, list.length - 4, list.length - 2, list.length - 1, list.length, list.length + 3, -1, -3, 1.5, random(list.length + 2)];
    for (const offset of offsets) {
      for (const method of ['readUInt8', 'readUInt16BE', 'readUInt32BE'] as const) {
        assert.deepEqual(outcome(() => list[method](offset)), outcome(() => original[method].call(list, offset)), `${method}(${offset}) of ${list.length}`);
      }
      for (const end of [offset, offset + 1, offset + 5, list.length, list.length + 2, offset - 1, -1]) {
        for (const encoding of ['utf8', 'hex', undefined] as const) {
          assert.deepEqual(outcome(() => list.toString(encoding, offset, end)), outcome(() => original.toString.call(list, encoding, offset, end)), `toString(${encoding}, ${offset}, ${end})`);
        }
      }
    }
    assert.deepEqual(outcome(() => list.readUInt8()), outcome(() => original.readUInt8.call(list)));
    assert.deepEqual(outcome(() => list.toString()), outcome(() => original.toString.call(list)));
  }
});

test('readBufferListsDirectly - mqtt-packet parses PUBLISH, CONNECT and SUBSCRIBE packets cut at every byte as before', () => {
  const packets = [
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'dévice-1', keepalive: 30, username: 'u', password: Buffer.from('p') },
    { cmd: 'publish', topic: 'sensors/é/t', payload: Buffer.from('{"v":1}'), qos: 1, messageId: 4660, retain: false, dup: false },
    { cmd: 'publish', topic: 'a', payload: Buffer.alloc(300, 7), qos: 0, retain: true, dup: false },
    { cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'x/+/y', qos: 1 }] },
    { cmd: 'pubrel', messageId: 65535 },
  ];
  const bytes = Buffer.concat(packets.map((packet) => mqttPacket.generate(packet)));
  const parse = (cuts: number[]) => {
    const parser = mqttPacket.parser();
    const parsed: unknown[] = [];
    parser.on('packet', (packet) => parsed.push(packet));
    parser.on('error', (error) => parsed.push(error));
    let from = 0;
    for (const cut of [...cuts, bytes.length]) {
      parser.parse(bytes.subarray(from, cut));
      from = cut;
    }
    return parsed.map((packet) => JSON.parse(JSON.stringify(packet)) as Record<string, unknown>);
  };
  const whole = parse([]);
  assert.equal(whole.length, packets.length);
  assert.deepEqual(whole.map((packet) => packet.cmd), packets.map((packet) => packet.cmd));
  assert.equal(whole[1]!.topic, 'sensors/é/t');
  assert.equal(whole[1]!.messageId, 4660);
  assert.equal(whole[0]!.clientId, 'dévice-1');
  for (let cut = 1; cut < bytes.length; cut++) assert.deepEqual(parse([cut]), whole, `cut at ${cut}`);
  assert.deepEqual(parse(Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)), whole, 'one byte at a time');
});
