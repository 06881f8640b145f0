/**
 * The lossless encoding between MQTT topic levels and AMQP routing-key words: a level
 * becomes a word by swapping `.` and `/`, and a word becomes a level by the same swap.
 * For topics without dots this is exactly what RabbitMQ's MQTT plugin does (`a/b` -> `a.b`),
 * but a level `room.1` stays one word (`room/1`) instead of becoming two.
 */
const DOT = 0x2e;
const SLASH = 0x2f;

/** Room for the ASCII swap; longer values (routing keys stop at 255 bytes) take the general path. */
const scratch = Buffer.allocUnsafe(256);

export function swapDotsAndSlashes(value: string): string {
  if (value.indexOf('.') === -1 && value.indexOf('/') === -1) return value;
  return swapAscii(value) ?? value.split('.').map((part) => part.replaceAll('/', '.')).join('/');
}

/**
 * The swap of an ASCII value, written byte by byte and read back as one flat string; null for a
 * value that is not ASCII or too long. Every uplink publish's routing key comes through here:
 * a string grown a character at a time cost twice as much and left a string object per character.
 */
function swapAscii(value: string): string | null {
  const length = value.length;
  if (length > scratch.length) return null;
  for (let i = 0; i < length; i++) {
    const code = value.charCodeAt(i);
    if (code > 0x7f) return null;
    scratch[i] = code === DOT ? SLASH : code === SLASH ? DOT : code;
  }
  return scratch.toString('latin1', 0, length);
}

/** One topic level as one routing-key word. */
export const levelToWord = swapDotsAndSlashes;
/** One routing-key word as one topic level. */
export const wordToLevel = swapDotsAndSlashes;

/** A whole topic (levels joined by `/`) as a routing key (words joined by `.`). */
export const topicToRoutingKey = swapDotsAndSlashes;
/** A whole routing key as a topic. */
export const routingKeyToTopic = swapDotsAndSlashes;
