import { encodeRemainingLength } from '../../src/mqtt/packet-encoding.js';

/** A string as MQTT writes one: a 2-byte length, then the bytes as given (which need not be UTF-8). */
export function mqttString(text: string | Buffer): Buffer {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes]);
}

/** A packet of this first byte around this body, with its remaining length. */
export function packetBytes(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), encodeRemainingLength(body.length), body]);
}

export interface ConnectBytesOptions {
  protocolName?: string;
  level?: number;
  clientId?: string | Buffer;
  clean?: boolean;
  keepalive?: number;
  will?: { topic: string | Buffer; payload?: Buffer; qos?: number; retain?: boolean };
  username?: string | Buffer;
  password?: string | Buffer;
  /** Bytes after the last field, inside the remaining length. */
  trailing?: Buffer;
}

/**
 * A CONNECT written by hand, so that it can be anything a hostile client sends: a will topic
 * with wildcards or bytes that are not UTF-8, will QoS 3, a password without a user name (the
 * flags follow the fields given), another protocol name or level, bytes after the fields.
 */
export function connectBytes(options: ConnectBytesOptions): Buffer {
  const will = options.will;
  const flags =
    (options.username !== undefined ? 0x80 : 0) |
    (options.password !== undefined ? 0x40 : 0) |
    (will?.retain ? 0x20 : 0) |
    ((will?.qos ?? 0) << 3) |
    (will ? 0x04 : 0) |
    (options.clean === false ? 0 : 0x02);
  const keepalive = options.keepalive ?? 60;
  const body = Buffer.concat([
    mqttString(options.protocolName ?? 'MQTT'),
    Buffer.from([options.level ?? 4, flags, keepalive >> 8, keepalive & 0xff]),
    mqttString(options.clientId ?? ''),
    ...(will ? [mqttString(will.topic), mqttString(will.payload ?? Buffer.alloc(0))] : []),
    ...(options.username !== undefined ? [mqttString(options.username)] : []),
    ...(options.password !== undefined ? [mqttString(options.password)] : []),
    options.trailing ?? Buffer.alloc(0),
  ]);
  return packetBytes(0x10, body);
}
