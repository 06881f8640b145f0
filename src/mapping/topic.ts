import { TopicError } from '../errors.js';

/** [MQTT-1.5.3] strings are at most 65,535 bytes of UTF-8. */
export const MAX_TOPIC_BYTES = 65_535;

/**
 * Checks a topic name as a device would publish it: [MQTT-4.7.1-1] no wildcards,
 * [MQTT-4.7.3-1] at least one character, [MQTT-1.5.3-2] no U+0000.
 */
export function assertTopicName(topic: string): void {
  if (topic.length === 0) throw new TopicError('a topic name must be at least one character long [MQTT-4.7.3-1]');
  if (topic.includes('+') || topic.includes('#')) {
    throw new TopicError(`topic name "${topic}" contains a wildcard; wildcards are only allowed in filters [MQTT-4.7.1-1]`);
  }
  if (topic.includes('\u0000')) throw new TopicError('a topic name must not contain U+0000 [MQTT-1.5.3-2]');
  if (Buffer.byteLength(topic, 'utf8') > MAX_TOPIC_BYTES) {
    throw new TopicError(`topic name is longer than ${MAX_TOPIC_BYTES} bytes [MQTT-1.5.3]`);
  }
}

/** How many levels a topic name or filter has, counted without splitting it. */
export function topicLevels(topic: string): number {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels++;
  return levels;
}
