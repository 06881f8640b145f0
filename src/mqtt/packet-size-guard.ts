import type { FramingProgress } from './ingress-budget.js';

/**
 * Follows MQTT packet framing over a byte stream without buffering anything: reads each fixed
 * header (type byte, then the remaining length, 1 to 4 bytes [MQTT-2.2.3]) and skips the body.
 * It answers, chunk by chunk, whether a packet announced more than `maxRemainingLength`, so a
 * connection can be closed before the payload of an oversized one is read into memory; and it
 * tells where the packet being read ends (FramingProgress), for the ingress budgets.
 */
export class PacketSizeGuard implements FramingProgress {
  private phase: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;
  /** Bytes read so far, over all chunks. */
  private consumed = 0;
  private startedInChunk = false;

  constructor(private readonly maxRemainingLength: number) {}

  get pendingEnd(): number {
    return this.phase === 'body' ? this.consumed + this.bodyLeft : this.consumed;
  }

  get incompleteBytes(): number {
    if (this.phase === 'type') return 0;
    return this.phase === 'length' ? 1 + this.lengthBytes : 1 + this.lengthBytes + this.length;
  }

  get incompleteStartedInLastChunk(): boolean {
    return this.startedInChunk;
  }

  /**
   * The remaining length of the packet that broke the limit, -1 for a malformed length, or null
   * if all is well. `maxRemainingLength` replaces the guard's own limit for the packets whose
   * header is in this chunk (a lower one applies before login).
   */
  check(chunk: Buffer, maxRemainingLength = this.maxRemainingLength): number | null {
    this.consumed += chunk.length;
    this.startedInChunk = false;
    let i = 0;
    while (i < chunk.length) {
      if (this.phase === 'body') {
        const skip = Math.min(this.bodyLeft, chunk.length - i);
        i += skip;
        this.bodyLeft -= skip;
        if (this.bodyLeft === 0) this.phase = 'type';
        continue;
      }
      if (this.phase === 'type') {
        i++;
        this.phase = 'length';
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        this.startedInChunk = true;
        continue;
      }
      const byte = chunk[i++]!;
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (byte & 0x80) {
        if (this.lengthBytes === 4) return -1; // a fifth length byte is malformed
        continue;
      }
      if (this.length > maxRemainingLength) return this.length;
      this.bodyLeft = this.length;
      this.phase = this.length === 0 ? 'type' : 'body';
    }
    return null;
  }
}
