/**
 * Follows MQTT packet framing over a byte stream without buffering anything: reads each fixed
 * header (type byte, then the remaining length, 1 to 4 bytes [MQTT-2.2.3]) and skips the body.
 * It answers, chunk by chunk, whether a packet announced more than `maxRemainingLength`, so a
 * connection can be closed before the payload of an oversized packet is read into memory.
 */
export class PacketSizeGuard {
  private phase: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;

  constructor(private readonly maxRemainingLength: number) {}

  /** The remaining length of the packet that broke the limit, -1 for a malformed length, or null if all is well. */
  check(chunk: Buffer): number | null {
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
      if (this.length > this.maxRemainingLength) return this.length;
      this.bodyLeft = this.length;
      this.phase = this.length === 0 ? 'type' : 'body';
    }
    return null;
  }
}
