import { holdsForbiddenCharacters, topicLevels } from '../protocol/mqtt.js';

/**
 * Which configured limit (or rule of the protocol) refused something; the label of
 * `mqtt_amqp_bridge_limits_refused_total`. `invalid_topic` is a topic or filter MQTT forbids;
 * `protocol_violation` a packet MQTT 3.1.1 calls malformed or a protocol error.
 */
export type LimitName =
  | 'packet_size'
  | 'connections'
  | 'topic_length'
  | 'topic_levels'
  | 'subscriptions'
  | 'invalid_topic'
  | 'protocol_violation'
  | 'connect_size'
  | 'unauthenticated_bytes'
  | 'buffered_bytes'
  | 'buffered_bytes_per_address'
  | 'connections_per_address'
  | 'packet_timeout'
  | RetainedLimitName
  | 'qos2_pending_bytes';

/** The limits on retained messages (`mqtt.maxRetained*`), in total and per user. */
export type RetainedLimitName = 'retained_messages' | 'retained_bytes' | 'retained_messages_per_user' | 'retained_bytes_per_user';

export interface TopicLimits {
  readonly maxTopicBytes: number;
  readonly maxTopicLevels: number;
}

/**
 * The limit a topic name or filter breaks, or null. A topic with U+0000 [MQTT-4.7.3-2] or with
 * U+FFFD is refused too: the MQTT parser turns bytes that are not UTF-8 into U+FFFD, so that is
 * how invalid UTF-8 [MQTT-1.5.3-1] shows by the time the bridge sees the topic.
 */
export function topicLimitBroken(topic: string, limits: TopicLimits): LimitName | null {
  if (holdsForbiddenCharacters(topic)) return 'invalid_topic';
  // A string of n UTF-16 units is at most 3n bytes: measure only when it could be too long.
  if (topic.length * 3 > limits.maxTopicBytes && Buffer.byteLength(topic, 'utf8') > limits.maxTopicBytes) return 'topic_length';
  return topicLevels(topic) > limits.maxTopicLevels ? 'topic_levels' : null;
}
