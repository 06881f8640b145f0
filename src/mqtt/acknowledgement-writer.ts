import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';

/**
 * aedes writes every PUBACK (and PUBREC, PUBCOMP) through mqtt-packet's `writeToStream`, which
 * corks the socket, writes the 4-byte packet in three pieces (type, length, packet id) and
 * uncorks on the next tick. Each piece is a write call of its own and a buffer more for the
 * socket's writev: one uplink QoS 1 message paid 0.16 us more for it than for one write
 * (docs/performance.md). `writeAcknowledgementsWhole` replaces `writeToStream` in the
 * mqtt-packet that aedes loads with one that writes an MQTT 3.1.1 PUBACK, PUBREC or PUBCOMP as one
 * buffer, corked until the next tick as mqtt-packet corks (so the acknowledgements of one tick
 * still leave in one write, in the same order as every other packet) but with one cork and one
 * `nextTick` per stream and tick instead of one per packet, and hands every other packet to
 * mqtt-packet as before.
 */

type WriteToStream = ((packet: object, stream: Writable, options?: { protocolVersion?: number }) => boolean) & { cacheNumbers?: boolean };
interface MqttPacketExports {
  writeToStream?: WriteToStream & { [WHOLE]?: true };
}

const WHOLE = Symbol.for('mqtt-amqp-bridge.whole-acknowledgements');
/** Set on a stream while an uncork for it waits for the next tick. */
const UNCORK_PENDING = Symbol('uncork pending');
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
    if (firstByte === undefined || options?.protocolVersion === 5 || !isPacketId(messageId)) return original(packet, stream, options);
    const corked = stream as Writable & { [UNCORK_PENDING]?: boolean };
    if (!corked[UNCORK_PENDING]) {
      // One uncork per stream and tick flushes every acknowledgement of the tick, as mqtt-packet's one per packet did.
      corked[UNCORK_PENDING] = true;
      stream.cork();
      process.nextTick(uncork, corked);
    }
    const bytes = Buffer.allocUnsafe(4);
    bytes[0] = firstByte;
    bytes[1] = 2;
    bytes[2] = messageId >> 8;
    bytes[3] = messageId & 0xff;
    return stream.write(bytes);
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

function uncork(stream: Writable & { [UNCORK_PENDING]?: boolean }): void {
  stream[UNCORK_PENDING] = false;
  stream.uncork();
}
