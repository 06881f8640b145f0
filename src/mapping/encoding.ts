/**
 * The lossless encoding between MQTT topic levels and AMQP routing-key words: a level
 * becomes a word by swapping `.` and `/`, and a word becomes a level by the same swap.
 * For topics without dots this is exactly what RabbitMQ's MQTT plugin does (`a/b` -> `a.b`),
 * but a level `room.1` stays one word (`room/1`) instead of becoming two.
 */
const DOT = 0x2e;
const SLASH = 0x2f;

export function swapDotsAndSlashes(value: string): string {
  if (value.indexOf('.') === -1 && value.indexOf('/') === -1) return value;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    out += code === DOT ? '/' : code === SLASH ? '.' : value[i];
  }
  return out;
}

/** One topic level as one routing-key word. */
export const levelToWord = swapDotsAndSlashes;
/** One routing-key word as one topic level. */
export const wordToLevel = swapDotsAndSlashes;

/** A whole topic (levels joined by `/`) as a routing key (words joined by `.`). */
export const topicToRoutingKey = swapDotsAndSlashes;
/** A whole routing key as a topic. */
export const routingKeyToTopic = swapDotsAndSlashes;
