import { BridgeError } from '../../errors.js';

/**
 * A publish as it travels from one bridge instance to another: what aedes' subscription
 * handlers on the receiving instance read, nothing more (MQTT 3.1.1 fields). `brokerId` and
 * `brokerCounter` are the publishing instance's: aedes finds the copy it queued for a persistent
 * session by them, and a client that matches the message with two filters gets it once.
 */
export interface ClusterPacket {
  readonly cmd: 'publish';
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
  readonly dup: boolean;
  readonly brokerId: string | undefined;
  readonly brokerCounter: number | undefined;
  readonly clientId?: string;
}

/** What `emit` may be given: aedes' Packet, or a plain object from a persistence or a test. */
export interface EmittedPacket {
  readonly topic: string;
  readonly payload?: Buffer | string | Uint8Array;
  readonly qos?: number;
  readonly retain?: boolean;
  readonly dup?: boolean;
  readonly brokerId?: string;
  readonly brokerCounter?: number;
  readonly clientId?: string;
}

export interface DecodedFrame {
  /** The instance that sent it. */
  readonly origin: string;
  readonly packet: ClusterPacket;
}

const FRAME_VERSION = 1;
const HEADER_OFFSET = 4;
const QOS_MASK = 0b11;
const RETAIN = 0b100;
const DUP = 0b1000;

/**
 * Frame: version (1 byte), flags (QoS, retain, dup: 1 byte), header length (2 bytes), the header
 * as JSON `[origin, topic, brokerId, brokerCounter, clientId]`, then the payload as is.
 */
export function encodeFrame(origin: string, packet: EmittedPacket): Buffer {
  const header = Buffer.from(JSON.stringify([origin, packet.topic, packet.brokerId ?? null, packet.brokerCounter ?? null, packet.clientId ?? null]), 'utf8');
  if (header.length > 0xffff) throw new BridgeError('BRIDGE_ERR_INTERNAL', `a cluster frame header of ${header.length} bytes`);
  const payload = toBuffer(packet.payload);
  const frame = Buffer.allocUnsafe(HEADER_OFFSET + header.length + payload.length);
  frame[0] = FRAME_VERSION;
  frame[1] = ((packet.qos ?? 0) & QOS_MASK) | (packet.retain ? RETAIN : 0) | (packet.dup ? DUP : 0);
  frame.writeUInt16BE(header.length, 2);
  header.copy(frame, HEADER_OFFSET);
  payload.copy(frame, HEADER_OFFSET + header.length);
  return frame;
}

/** Reads a frame; throws BRIDGE_ERR_INTERNAL for one this version did not write. */
export function decodeFrame(frame: Buffer): DecodedFrame {
  if (frame.length < HEADER_OFFSET || frame[0] !== FRAME_VERSION) throw malformed('an unknown frame version');
  const flags = frame[1]!;
  const qos = flags & QOS_MASK;
  if (qos === 3) throw malformed('QoS 3');
  const headerEnd = HEADER_OFFSET + frame.readUInt16BE(2);
  if (headerEnd > frame.length) throw malformed('a truncated header');
  let header: unknown;
  try {
    header = JSON.parse(frame.toString('utf8', HEADER_OFFSET, headerEnd));
  } catch (error) {
    throw malformed('a header that is not JSON', error);
  }
  if (!Array.isArray(header) || header.length !== 5) throw malformed('a header of another shape');
  const [origin, topic, brokerId, brokerCounter, clientId] = header as unknown[];
  if (typeof origin !== 'string' || typeof topic !== 'string' || topic.length === 0) throw malformed('no origin or topic');
  if ((brokerId !== null && typeof brokerId !== 'string') || (brokerCounter !== null && typeof brokerCounter !== 'number')) throw malformed('a bad broker id or counter');
  if (clientId !== null && typeof clientId !== 'string') throw malformed('a bad client id');
  const packet: ClusterPacket = {
    cmd: 'publish',
    topic,
    payload: frame.subarray(headerEnd),
    qos: qos as 0 | 1 | 2,
    retain: (flags & RETAIN) !== 0,
    dup: (flags & DUP) !== 0,
    brokerId: brokerId ?? undefined,
    brokerCounter: brokerCounter ?? undefined,
    ...(clientId === null ? {} : { clientId }),
  };
  return { origin, packet };
}

function toBuffer(payload: EmittedPacket['payload']): Buffer {
  if (payload === undefined) return Buffer.alloc(0);
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

function malformed(what: string, cause?: unknown): BridgeError {
  return new BridgeError('BRIDGE_ERR_INTERNAL', `a message from another bridge instance has ${what}`, { cause });
}
