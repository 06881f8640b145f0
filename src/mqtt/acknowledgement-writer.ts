import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';

/**
 * aedes writes every PUBACK (and PUBREC, PUBCOMP) through mqtt-packet's `writeToStream`, which
 * corks the socket, writes the 4-byte packet in three pieces (type, length, packet id) and
 * uncorks on the next tick: three write calls and three buffers for the socket's writev per
 * acknowledgement. A confirm from RabbitMQ acknowledges many publishes of a client in one tick.
 * `writeAcknowledgementsWhole` replaces `writeToStream` in the mqtt-packet that aedes loads with
 * one that gathers a connection's MQTT 3.1.1 PUBACK, PUBREC and PUBCOMP of one tick into one
 * buffer, written at the end of the tick: one write call for all of them
 * (docs/performance.md). They stay in order among themselves and before any packet aedes writes
 * after them (that packet first writes those gathered), as MQTT 3.1.1 asks (4.6: acknowledgements
 * in the order the PUBLISHes came). Every other packet, MQTT 5 and a bad packet id go to
 * mqtt-packet as before. On a connection destroyed before the end of the tick nothing is written,
 * as mqtt-packet's corked bytes were lost with it.
 */

type WriteToStream = ((packet: object, stream: Writable, options?: { protocolVersion?: number }) => boolean) & { cacheNumbers?: boolean };
interface MqttPacketExports {
  writeToStream?: WriteToStream & { [WHOLE]?: true };
}

const WHOLE = Symbol.for('mqtt-amqp-bridge.whole-acknowledgements');
/** A connection's acknowledgements gathered in this tick, not written yet. */
const GATHERED = Symbol('acknowledgements gathered');
/** The first byte of each acknowledgement written whole: its packet type, no flags. */
const FIRST_BYTE: Readonly<Record<string, number>> = { puback: 0x40, pubrec: 0x50, pubcomp: 0x70 };

/** Installs the whole-buffer acknowledgements (once per process); false when mqtt-packet has no `writeToStream` to replace. */
export function writeAcknowledgementsWhole(): boolean {
  const require = createRequire(createRequire(import.meta.url).resolve('aedes'));
  const mqttPacket = require('mqtt-packet') as MqttPacketExports;
  const original = mqttPacket.writeToStream;
  if (typeof original !== 'function') return false;
  if (original[WHOLE]) return true;
  const writeToStream = ((packet, stream, options) => {
    const { cmd, messageId } = packet as { cmd?: unknown; messageId?: unknown };
    const firstByte = typeof cmd === 'string' ? FIRST_BYTE[cmd] : undefined;
    if (firstByte === undefined || options?.protocolVersion === 5 || !isPacketId(messageId)) {
      const acks = (stream as AckStream)[GATHERED];
      if (acks && acks.used > 0) writeGathered(stream, acks); // they came first
      return original(packet, stream, options);
    }
    const acks = gathering(stream);
    if (acks.used === acks.bytes.length) writeGathered(stream, acks);
    const bytes = acks.bytes;
    const at = acks.used;
    bytes[at] = firstByte;
    bytes[at + 1] = 2;
    bytes[at + 2] = messageId >> 8;
    bytes[at + 3] = messageId & 0xff;
    acks.used = at + 4;
    return !stream.writableNeedDrain;
  }) as WriteToStream & { [WHOLE]?: true };
  // mqtt.js turns mqtt-packet's number cache off through this property; it stays the original's.
  Object.defineProperty(writeToStream, 'cacheNumbers', {
    get: () => original.cacheNumbers,
    set: (value: boolean) => {
      original.cacheNumbers = value;
    },
  });
  writeToStream[WHOLE] = true;
  mqttPacket.writeToStream = writeToStream;
  return true;
}

function isPacketId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

/** Room for this many acknowledgements per connection and tick before they are written and gathering starts again. */
const ACKS_PER_WRITE = 128;

interface Gathered {
  bytes: Buffer;
  used: number;
}
type AckStream = Writable & { [GATHERED]?: Gathered | null };

/** The acknowledgements gathered for this connection in this tick; the first one of the tick sets the write at its end. */
function gathering(stream: Writable): Gathered {
  const ackStream = stream as AckStream;
  let acks = ackStream[GATHERED];
  if (!acks) {
    acks = ackStream[GATHERED] = { bytes: Buffer.allocUnsafe(4 * ACKS_PER_WRITE), used: 0 };
    process.nextTick(writeAtEndOfTick, ackStream);
  }
  return acks;
}

function writeAtEndOfTick(stream: AckStream): void {
  const acks = stream[GATHERED];
  stream[GATHERED] = null;
  if (acks && acks.used > 0) write(stream, acks.bytes, acks.used);
}

/** Writes what is gathered and goes on gathering in a new buffer (the one written is the stream's now). */
function writeGathered(stream: Writable, acks: Gathered): void {
  const { bytes, used } = acks;
  acks.bytes = Buffer.allocUnsafe(4 * ACKS_PER_WRITE);
  acks.used = 0;
  write(stream, bytes, used);
}

function write(stream: Writable, bytes: Buffer, used: number): void {
  if (stream.destroyed || stream.writableEnded) return;
  stream.write(used === bytes.length ? bytes : bytes.subarray(0, used));
}
