import { BridgeError } from '../../errors.js';

/**
 * How the bridge writes a packet into Redis (queued messages, retained messages, wills): a
 * 4-byte length, a JSON header with every field but the payload, then the payload's bytes as
 * they are. Binary payloads cost nothing extra (no base64), and no encoding library is needed.
 */

/** The fields of a packet that are kept (aedes' Packet, a PUBREL, a will). */
export interface StoredPacket {
  cmd: string;
  topic?: string;
  payload?: Buffer;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  clientId?: string;
}

const HEADER_FIELDS = ['cmd', 'topic', 'qos', 'retain', 'dup', 'messageId', 'brokerId', 'brokerCounter', 'clientId'] as const;

export function encodePacket(packet: Readonly<StoredPacket>): Buffer {
  const header: Record<string, unknown> = {};
  for (const field of HEADER_FIELDS) if (packet[field] !== undefined && packet[field] !== null) header[field] = packet[field];
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const payload = packet.payload === undefined ? null : typeof packet.payload === 'string' ? Buffer.from(packet.payload, 'utf8') : packet.payload;
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(json.length);
  return payload ? Buffer.concat([length, json, payload]) : Buffer.concat([length, json]);
}

export function decodePacket(encoded: Buffer): StoredPacket {
  if (encoded.length < 4) throw malformed();
  const length = encoded.readUInt32BE(0);
  if (encoded.length < 4 + length) throw malformed();
  const header = JSON.parse(encoded.subarray(4, 4 + length).toString('utf8')) as StoredPacket;
  if (typeof header.cmd !== 'string') throw malformed();
  if (header.cmd === 'publish') {
    // Memory of its own (not from the shared pool), so that a kept payload holds neither the
    // reply it came in nor a pool slab.
    const payload = Buffer.alloc(encoded.length - 4 - length);
    encoded.copy(payload, 0, 4 + length);
    header.payload = payload;
  }
  return header;
}

function malformed(): BridgeError {
  return new BridgeError('BRIDGE_ERR_INTERNAL', 'a packet stored in Redis is malformed');
}
