import { randomFillSync } from 'node:crypto';

/** UUIDs made per batch: one fill of random bytes and one string for this many. */
const BATCH = 128;
const UUID_LENGTH = 36;
const HYPHEN = 0x2d;
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');

/**
 * Random (version 4) UUIDs for uplink message ids, as crypto.randomUUID makes them, made 128 at
 * a time into one flat string that each id is a slice of. randomUUID builds each id by joining
 * 20 pieces, and the frame encoder then flattens that string again: on every uplink publish,
 * that was twice the CPU and 20 string objects more than a slice.
 */
export class MessageIds {
  private readonly random = Buffer.allocUnsafe(16 * BATCH);
  private readonly text = Buffer.allocUnsafe(UUID_LENGTH * BATCH);
  private block = '';
  private next = BATCH;

  readonly newId = (): string => {
    if (this.next === BATCH) this.refill();
    const start = UUID_LENGTH * this.next++;
    return this.block.slice(start, start + UUID_LENGTH);
  };

  private refill(): void {
    const { random, text } = this;
    randomFillSync(random);
    let out = 0;
    for (let id = 0; id < BATCH; id++) {
      const bytes = id * 16;
      random[bytes + 6] = (random[bytes + 6]! & 0x0f) | 0x40; // version 4
      random[bytes + 8] = (random[bytes + 8]! & 0x3f) | 0x80; // the RFC 9562 variant
      for (let i = 0; i < 16; i++) {
        if (i === 4 || i === 6 || i === 8 || i === 10) text[out++] = HYPHEN;
        const byte = random[bytes + i]!;
        text[out++] = HEX_DIGITS[byte >> 4]!;
        text[out++] = HEX_DIGITS[byte & 0x0f]!;
      }
    }
    this.block = text.toString('latin1');
    this.next = 0;
  }
}
