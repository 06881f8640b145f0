import { createRequire } from 'node:module';

/**
 * mqtt-packet parses from a `bl` BufferList, whose reads (readUInt8, readUInt16BE, readUInt32BE)
 * and toString each first slice the list into a new Buffer and then read that: about six slices
 * for each PUBLISH parsed (the fixed header byte, the remaining length, the topic's length and
 * the topic, the packet id): parsing a PUBLISH took 0.4 us more, and each uplink message left
 * 0.7 KB more garbage (docs/performance.md). `readBufferListsDirectly` replaces those four methods, in the bl that
 * mqtt-packet loads, with ones that read straight from the buffer holding the bytes when
 * they lie in one buffer, which is nearly always, and otherwise do what bl does. The results are
 * the same, errors included (test/unit/mqtt/buffer-list-reads.test.ts).
 */

interface BufferListInternals {
  _bufs: Buffer[];
  length: number;
}
type Read = (this: BufferListInternals, offset?: number) => number;
type ToString = (this: BufferListInternals, encoding?: BufferEncoding, start?: number, end?: number) => string;
interface BufferListPrototype {
  readUInt8: Read;
  readUInt16BE: Read;
  readUInt32BE: Read;
  toString: ToString;
  [DIRECT]?: true;
}

const DIRECT = Symbol.for('mqtt-amqp-bridge.direct-buffer-list-reads');

/**
 * Installs the direct reads (once per process) on bl's BufferList and on its BufferListStream,
 * which copied BufferList's methods when it loaded and is what mqtt-packet's parser reads from;
 * false when they are not as expected.
 */
export function readBufferListsDirectly(): boolean {
  const fromMqttPacket = createRequire(createRequire(createRequire(import.meta.url).resolve('aedes')).resolve('mqtt-packet'));
  const bl = fromMqttPacket('bl') as { BufferList?: { prototype: BufferListPrototype }; BufferListStream?: { prototype: BufferListPrototype } };
  const prototypes = [bl.BufferListStream?.prototype, bl.BufferList?.prototype];
  return prototypes.every((prototype) => prototype !== undefined && readDirectly(prototype));
}

function readDirectly(prototype: BufferListPrototype): boolean {
  if (prototype[DIRECT]) return true;
  const { readUInt8, readUInt16BE, readUInt32BE, toString } = prototype;
  if (![readUInt8, readUInt16BE, readUInt32BE, toString].every((method) => typeof method === 'function')) return false;
  prototype.readUInt8 = function (offset = 0) {
    const at = locate(this, offset, 1);
    return at === null ? readUInt8.call(this, offset) : at.buffer[at.index]!;
  };
  prototype.readUInt16BE = function (offset = 0) {
    const at = locate(this, offset, 2);
    return at === null ? readUInt16BE.call(this, offset) : at.buffer.readUInt16BE(at.index);
  };
  prototype.readUInt32BE = function (offset = 0) {
    const at = locate(this, offset, 4);
    return at === null ? readUInt32BE.call(this, offset) : at.buffer.readUInt32BE(at.index);
  };
  prototype.toString = function (encoding, start, end) {
    if (typeof start !== 'number' || typeof end !== 'number' || end < start) return toString.call(this, encoding, start, end);
    const at = locate(this, start, end - start);
    return at === null ? toString.call(this, encoding, start, end) : at.buffer.toString(encoding, at.index, at.index + end - start);
  };
  prototype[DIRECT] = true;
  return true;
}

/** One result object reused: the callers read it at once. */
const found: { buffer: Buffer; index: number } = { buffer: Buffer.alloc(0), index: 0 };

/** The buffer and index where `bytes` bytes from `offset` lie, when they lie in one buffer; null otherwise (bl's own method then answers). */
function locate(list: BufferListInternals, offset: number, bytes: number): typeof found | null {
  if (!Number.isInteger(offset) || offset < 0 || offset + bytes > list.length) return null;
  const buffers = list._bufs;
  let index = offset;
  for (let i = 0; i < buffers.length; i++) {
    const buffer = buffers[i]!;
    if (index < buffer.length) {
      if (index + bytes > buffer.length) return null;
      found.buffer = buffer;
      found.index = index;
      return found;
    }
    index -= buffer.length;
  }
  return null;
}
