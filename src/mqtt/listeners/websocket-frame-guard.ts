import type { FramingProgress } from '../ingress-budget.js';

/**
 * Follows WebSocket framing [RFC 6455 5.2] over the raw bytes of a connection without buffering
 * anything, as PacketSizeGuard does for MQTT: the WebSocket library holds a whole message before
 * the MQTT side sees a byte of it, so this is where a big message that never completes is seen.
 * It reads each frame header and skips the payload; a message is its data frames up to the one
 * with FIN set, control frames (which may come between fragments) are not part of it. It answers
 * whether a message announced more than `maxMessageBytes`, and where the message being read
 * ends (in payload bytes: what the MQTT side will receive).
 */
export class WebSocketFrameGuard implements FramingProgress {
  private phase: 'first' | 'second' | 'length' | 'mask' | 'payload' = 'first';
  private fin = false;
  private control = false;
  private headerBytes = 0;
  private lengthBytesLeft = 0;
  private maskBytesLeft = 0;
  private masked = false;
  private payloadLength = 0;
  private payloadLeft = 0;
  /** Payload bytes announced so far by the data frames of the message being read. */
  private messageBytes = 0;
  private messageOpen = false;
  /** Payload bytes of data frames: those read, plus what is announced of the frame being read. */
  private dataEnd = 0;
  private chunkNumber = 0;
  private unitStartChunk = -1;

  constructor(private readonly maxMessageBytes: number) {}

  get pendingEnd(): number {
    return this.dataEnd;
  }

  get incompleteBytes(): number {
    if (!this.messageOpen && this.phase === 'first') return 0;
    // While a header is read its message may not be known yet: what is read of the header stands for it.
    return Math.max(this.messageBytes, this.headerBytes, 1);
  }

  get incompleteStartedInLastChunk(): boolean {
    return this.unitStartChunk === this.chunkNumber;
  }

  /** The announced size of the message that broke the limit, -1 for a frame length over 2^53, or null if all is well. */
  check(chunk: Buffer): number | null {
    this.chunkNumber++;
    let i = 0;
    while (i < chunk.length) {
      if (this.phase === 'payload') {
        const skip = Math.min(this.payloadLeft, chunk.length - i);
        i += skip;
        this.payloadLeft -= skip;
        if (this.payloadLeft === 0) this.frameDone();
        continue;
      }
      const byte = chunk[i++]!;
      this.headerBytes++;
      switch (this.phase) {
        case 'first': {
          this.fin = (byte & 0x80) !== 0;
          const opcode = byte & 0x0f;
          this.control = opcode >= 0x08;
          // A frame outside a message, or the first frame of one, begins a unit; a frame inside
          // an open message (a fragment, or a control frame between fragments) does not.
          if (!this.messageOpen) this.unitStartChunk = this.chunkNumber;
          if (!this.control) this.messageOpen = true;
          this.phase = 'second';
          break;
        }
        case 'second': {
          this.masked = (byte & 0x80) !== 0;
          const length = byte & 0x7f;
          this.payloadLength = length < 126 ? length : 0;
          this.lengthBytesLeft = length === 126 ? 2 : length === 127 ? 8 : 0;
          if (this.lengthBytesLeft === 0) {
            const broken = this.lengthKnown();
            if (broken !== null) return broken;
          } else {
            this.phase = 'length';
          }
          break;
        }
        case 'length': {
          // Eight length bytes may announce up to 2^64 - 1: past 2^53 the number is not exact, and refused.
          if (this.lengthBytesLeft === 8 && byte > 0) return -1;
          if (this.lengthBytesLeft === 7 && byte > 0x1f) return -1;
          this.payloadLength = this.payloadLength * 256 + byte;
          if (--this.lengthBytesLeft === 0) {
            const broken = this.lengthKnown();
            if (broken !== null) return broken;
          }
          break;
        }
        case 'mask': {
          if (--this.maskBytesLeft === 0) this.maskDone();
          break;
        }
      }
    }
    return null;
  }

  private lengthKnown(): number | null {
    if (!this.control) {
      this.messageBytes += this.payloadLength;
      this.dataEnd += this.payloadLength;
      if (this.messageBytes > this.maxMessageBytes) return this.messageBytes;
    }
    if (this.masked) {
      this.maskBytesLeft = 4;
      this.phase = 'mask';
    } else {
      this.maskDone();
    }
    return null;
  }

  private maskDone(): void {
    this.payloadLeft = this.payloadLength;
    this.phase = 'payload';
    if (this.payloadLeft === 0) this.frameDone();
  }

  private frameDone(): void {
    this.phase = 'first';
    this.headerBytes = 0;
    if (!this.control && this.fin) {
      this.messageOpen = false;
      this.messageBytes = 0;
    }
  }
}
