import { PublishError } from '../errors.js';
import type { ExchangeDestination } from '../mapping/destination.js';
import type { HeaderValue } from '../mapping/uplink.js';
import type { OutboundMessage } from '../ports.js';

/** A message to an exchange: the only kind the AMQP 0-9-1 back end is given (the configuration makes sure). */
export type ExchangeMessage = OutboundMessage & ExchangeDestination;

const FRAME_METHOD = 1;
const FRAME_HEADER = 2;
const FRAME_BODY = 3;
const FRAME_END = 0xce;
/** Type, channel and size before a frame's payload, and the end octet after it. */
const FRAME_OVERHEAD = 8;
const BASIC_CLASS = 60;
const BASIC_PUBLISH = 40;

/** BasicProperties' presence flags, in the order the properties are written (AMQP 0-9-1, 4.2.6.1 and the basic class). */
const HAS_CONTENT_TYPE = 0x8000;
const HAS_CONTENT_ENCODING = 0x4000;
const HAS_HEADERS = 0x2000;
const HAS_DELIVERY_MODE = 0x1000;
const HAS_PRIORITY = 0x0800;
const HAS_CORRELATION_ID = 0x0400;
const HAS_REPLY_TO = 0x0200;
const HAS_EXPIRATION = 0x0100;
const HAS_MESSAGE_ID = 0x0080;
const HAS_TIMESTAMP = 0x0040;
const HAS_TYPE = 0x0020;
const HAS_APP_ID = 0x0008;

/** A content header frame cannot be split, and no frame may exceed frameMax; past this the scratch buffer is not used. */
const SCRATCH_BYTES = 256 * 1024;
const TWO_TO_32 = 2 ** 32;
/** Strings up to this long are copied by hand when they are ASCII. */
const SHORT_ASCII = 64;
const EMPTY = Buffer.alloc(0);

/**
 * Encodes a basic.publish as the bytes amqplib would send for it (method frame, content header
 * frame, body frames of at most frameMax), without the generic per-message work of amqplib's
 * encoder: `prepare` writes the method and header frames into a scratch buffer (the header table
 * with the few value types a rule produces) and gives their size with the body's, and `writeTo`
 * then copies them and the body frames into the buffer the caller chose (the framed channel's
 * slab). `test/unit/amqp/publish-frames.test.ts` checks the
 * bytes against amqplib's own encoder. Throws PublishError BRIDGE_ERR_PUBLISH_TOO_LARGE when the
 * properties do not fit in one frame: RabbitMQ would close the whole connection for that.
 */
export class PublishFrameEncoder {
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  /** Where the frame being written must end: frameMax bytes after its start, or the scratch buffer's end. */
  private limit = SCRATCH_BYTES;

  /** What `prepare` encoded last, for `writeTo`. */
  private readonly prepared: { headerBytes: number; content: Buffer; channel: number; maxBody: number } = { headerBytes: 0, content: EMPTY, channel: 0, maxBody: 1 };

  /**
   * Encodes the method and content header frames into the scratch buffer and returns how many
   * bytes the publish's frames take; `writeTo` then writes them. Throws PublishError
   * BRIDGE_ERR_PUBLISH_TOO_LARGE (nothing written) when they cannot be sent.
   */
  prepare(channel: number, frameMax: number, message: ExchangeMessage): number {
    const scratch = this.scratch;
    // Method frame: basic.publish(ticket 0, exchange, routing key, mandatory 0, immediate 0).
    scratch[0] = FRAME_METHOD;
    scratch.writeUInt16BE(channel, 1);
    scratch.writeUInt16BE(BASIC_CLASS, 7);
    scratch.writeUInt16BE(BASIC_PUBLISH, 9);
    scratch.writeUInt16BE(0, 11);
    this.limit = SCRATCH_BYTES; // exchange and routing key are short strings: 255 bytes at most
    let offset = this.shortString(13, message.exchange, 'exchange');
    offset = this.shortString(offset, message.routingKey, 'routing key');
    scratch[offset++] = 0;
    scratch.writeUInt32BE(offset - 7, 3);
    scratch[offset++] = FRAME_END;

    // Content header frame.
    const header = offset;
    this.limit = Math.min(SCRATCH_BYTES, header + frameMax);
    scratch[header] = FRAME_HEADER;
    scratch.writeUInt16BE(channel, header + 1);
    scratch.writeUInt16BE(BASIC_CLASS, header + 7);
    scratch.writeUInt16BE(0, header + 9);
    const content = message.content;
    this.writeUInt64(header + 11, content.length);
    offset = this.properties(header + 19, message);
    scratch.writeUInt32BE(offset - header - 7, header + 3);
    this.room(offset, 1, 'the AMQP properties');
    scratch[offset++] = FRAME_END;

    const maxBody = frameMax - FRAME_OVERHEAD;
    const prepared = this.prepared;
    prepared.headerBytes = offset;
    prepared.content = content;
    prepared.channel = channel;
    prepared.maxBody = maxBody;
    return offset + content.length + Math.ceil(content.length / maxBody) * FRAME_OVERHEAD;
  }

  /** Writes the frames `prepare` encoded last into `target` at `at` (it has the room `prepare` returned); returns the offset after them. */
  writeTo(target: Buffer, at: number): number {
    const { headerBytes, content, channel, maxBody } = this.prepared;
    this.scratch.copy(target, at, 0, headerBytes);
    let offset = at + headerBytes;
    for (let start = 0; start < content.length; start += maxBody) {
      const size = Math.min(maxBody, content.length - start);
      target[offset] = FRAME_BODY;
      target.writeUInt16BE(channel, offset + 1);
      target.writeUInt32BE(size, offset + 3);
      content.copy(target, offset + 7, start, start + size);
      offset += 7 + size;
      target[offset++] = FRAME_END;
    }
    this.prepared.content = EMPTY; // not held past its publish
    return offset;
  }

  /** Flags, then each property present, in the flags' order; returns the offset after them. */
  private properties(flagsAt: number, message: ExchangeMessage): number {
    const { properties } = message;
    let flags = HAS_HEADERS | HAS_DELIVERY_MODE | HAS_MESSAGE_ID | HAS_TIMESTAMP;
    let offset = flagsAt + 2;
    if (properties.contentType !== undefined) {
      flags |= HAS_CONTENT_TYPE;
      offset = this.shortString(offset, properties.contentType, 'contentType');
    }
    if (properties.contentEncoding !== undefined) {
      flags |= HAS_CONTENT_ENCODING;
      offset = this.shortString(offset, properties.contentEncoding, 'contentEncoding');
    }
    offset = this.table(offset, message.headers);
    this.room(offset, 2, 'the AMQP properties');
    this.scratch[offset++] = properties.persistent ? 2 : 1;
    if (properties.priority !== undefined) {
      flags |= HAS_PRIORITY;
      this.scratch[offset++] = properties.priority;
    }
    if (properties.correlationId !== undefined) {
      flags |= HAS_CORRELATION_ID;
      offset = this.shortString(offset, properties.correlationId, 'correlationId');
    }
    if (properties.replyTo !== undefined) {
      flags |= HAS_REPLY_TO;
      offset = this.shortString(offset, properties.replyTo, 'replyTo');
    }
    if (properties.expiration !== undefined) {
      flags |= HAS_EXPIRATION;
      offset = this.shortString(offset, properties.expiration, 'expiration');
    }
    offset = this.shortString(offset, message.messageId, 'messageId');
    this.room(offset, 8, 'the AMQP properties');
    offset = this.writeUInt64(offset, message.timestamp);
    if (properties.type !== undefined) {
      flags |= HAS_TYPE;
      offset = this.shortString(offset, properties.type, 'type');
    }
    if (properties.appId !== undefined) {
      flags |= HAS_APP_ID;
      offset = this.shortString(offset, properties.appId, 'appId');
    }
    this.scratch.writeUInt16BE(flags, flagsAt);
    return offset;
  }

  /** A field table as amqplib writes one: string values as longstr, numbers as the smallest signed integer or a double, booleans. */
  private table(start: number, headers: Readonly<Record<string, HeaderValue>>): number {
    const scratch = this.scratch;
    this.room(start, 4, 'the headers');
    let offset = start + 4;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      offset = this.shortString(offset, name, 'a header name');
      this.room(offset, 9, 'the headers');
      if (typeof value === 'string') {
        scratch[offset] = 0x53; // 'S'
        const length = this.utf8(offset + 5, value, 'the headers');
        scratch.writeUInt32BE(length, offset + 1);
        offset += 5 + length;
      } else if (typeof value === 'boolean') {
        scratch[offset] = 0x74; // 't'
        scratch[offset + 1] = value ? 1 : 0;
        offset += 2;
      } else {
        offset = this.number(offset, value);
      }
    }
    scratch.writeUInt32BE(offset - start - 4, start);
    return offset;
  }

  private number(offset: number, value: number): number {
    const scratch = this.scratch;
    if (value >= 0x8000000000000000 || (Math.abs(value) < 0x4000000000000 && Math.floor(value) !== value)) {
      scratch[offset] = 0x64; // 'd'
      return scratch.writeDoubleBE(value, offset + 1);
    }
    if (value >= -0x80 && value < 0x80) {
      scratch[offset] = 0x62; // 'b'
      return scratch.writeInt8(value, offset + 1);
    }
    if (value >= -0x8000 && value < 0x8000) {
      scratch[offset] = 0x73; // 's'
      return scratch.writeInt16BE(value, offset + 1);
    }
    if (value >= -0x80000000 && value < 0x80000000) {
      scratch[offset] = 0x49; // 'I'
      return scratch.writeInt32BE(value, offset + 1);
    }
    scratch[offset] = 0x6c; // 'l'
    return scratch.writeBigInt64BE(BigInt(value), offset + 1);
  }

  private shortString(offset: number, value: string, what: string): number {
    const length = this.utf8(offset + 1, value, what);
    if (length > 255) throw new PublishError('BRIDGE_ERR_PUBLISH_TOO_LARGE', `${what} is ${length} bytes; AMQP allows at most 255`);
    this.scratch[offset] = length;
    return offset + 1 + length;
  }

  /** Writes a string as UTF-8 at `offset`, checking first that it fits; returns its length in bytes. */
  private utf8(offset: number, value: string, what: string): number {
    const length = value.length;
    // Three bytes per UTF-16 unit at most: only a string that might not fit is measured.
    if (length * 3 > this.limit - offset) this.room(offset, Buffer.byteLength(value), what);
    // A short ASCII string is copied code by code: Buffer#write's argument handling and native
    // call cost more than the copy for the eight or so short strings of each message.
    if (length <= SHORT_ASCII) {
      const scratch = this.scratch;
      let i = 0;
      for (; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) break;
        scratch[offset + i] = code;
      }
      if (i === length) return length;
    }
    return this.scratch.write(value, offset); // from the start again: it is not all ASCII
  }

  private writeUInt64(offset: number, value: number): number {
    this.scratch.writeUInt32BE(Math.floor(value / TWO_TO_32), offset);
    return this.scratch.writeUInt32BE(value % TWO_TO_32, offset + 4);
  }

  private room(offset: number, bytes: number, what: string): void {
    if (offset + bytes > this.limit) {
      throw new PublishError('BRIDGE_ERR_PUBLISH_TOO_LARGE', `${what} do not fit in the message's AMQP content header, which is one frame (frameMax, at most ${SCRATCH_BYTES} bytes here)`);
    }
  }
}
