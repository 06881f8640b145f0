import type { ConnectPacket, PublishPacket, SubscribePacket, UnsubscribePacket } from 'aedes';
import { topicLimitBroken, type LimitName, type TopicLimits } from './limits.js';
import { holdsForbiddenCharacters, isWellFormedFilter, UNACCEPTABLE_PROTOCOL_LEVEL } from '../protocol/mqtt.js';

/** A packet as the MQTT parser hands it to aedes. */
export type ParsedPacket =
  | ConnectPacket
  | SubscribePacket
  | UnsubscribePacket
  | PublishPacket
  | {
      readonly cmd: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp' | 'pingreq' | 'disconnect' | 'connack' | 'suback' | 'unsuback' | 'pingresp' | 'auth';
      readonly length?: number;
    };

/** Why a packet is refused: the label it is counted under, and the reason logged. */
export interface Violation {
  readonly limit: LimitName;
  readonly reason: string;
  /** The CONNACK return code to answer before closing, where MQTT asks for one; otherwise the connection is closed without an answer. */
  readonly connackReturnCode?: number;
}


const protocolViolation = (reason: string): Violation => ({ limit: 'protocol_violation', reason });
const invalidTopic = (reason: string): Violation => ({ limit: 'invalid_topic', reason });

/** Packets only a server sends [MQTT-2.2.1]. */
const SERVER_PACKETS: ReadonlySet<string> = new Set(['connack', 'suback', 'unsuback', 'pingresp']);

/** The remaining length of the packets that have no payload (MQTT 3.1.1 sections 3.4 to 3.7, 3.12, 3.14). */
const FIXED_REMAINING_LENGTH: Readonly<Record<string, number>> = { puback: 2, pubrec: 2, pubrel: 2, pubcomp: 2, pingreq: 0, disconnect: 0 };

/**
 * Checks, in order, the packets one client sends for what MQTT 3.1.1 calls malformed or a
 * protocol error and what the MQTT parser and aedes let through (the parser itself refuses
 * reserved flag bits, QoS 3 in a PUBLISH or SUBSCRIBE, and fields that overrun the packet). The
 * connection is to be closed at the first violation [MQTT-4.8.0-1].
 */
export class PacketConformance {
  private connectSeen = false;

  constructor(private readonly limits: TopicLimits) {}

  check(packet: ParsedPacket): Violation | null {
    if (packet.cmd === 'connect') {
      if (this.connectSeen) return protocolViolation('a second CONNECT [MQTT-3.1.0-2]');
      this.connectSeen = true;
      return connectViolation(packet, this.limits);
    }
    if (!this.connectSeen) return protocolViolation(`${packet.cmd.toUpperCase()} before CONNECT [MQTT-3.1.0-1]`);
    switch (packet.cmd) {
      case 'publish':
        return publishViolation(packet);
      case 'subscribe':
        return subscribeViolation(packet);
      case 'unsubscribe':
        return unsubscribeViolation(packet);
      default: {
        if (SERVER_PACKETS.has(packet.cmd)) return protocolViolation(`${packet.cmd.toUpperCase()}, which only a server sends`);
        const fixed = FIXED_REMAINING_LENGTH[packet.cmd];
        // The parser reads what it needs and skips the rest. A malformed DISCONNECT is not one: the will is published.
        if (fixed !== undefined && packet.length !== undefined && packet.length !== fixed) {
          return protocolViolation(`${packet.cmd.toUpperCase()} with a remaining length of ${packet.length} instead of ${fixed}`);
        }
        return null;
      }
    }
  }
}

/** What is wrong with a CONNECT that the parser accepted, or null. */
export function connectViolation(packet: ConnectPacket, limits: TopicLimits): Violation | null {
  const name = packet.protocolId;
  const level = packet.protocolVersion;
  // [MQTT-3.1.2-1] level 4 (3.1.1) is named "MQTT" and level 3 (3.1) "MQIsdp"; another pairing is
  // answered CONNACK 1 [MQTT-3.1.2-2], as Mosquitto does. "MQTT" level 5 is left to aedes, which answers 1.
  if ((name === 'MQTT' && level === 3) || (name === 'MQIsdp' && level !== 3)) {
    return { ...protocolViolation(`protocol name ${name} with level ${level} [MQTT-3.1.2-1]`), connackReturnCode: UNACCEPTABLE_PROTOCOL_LEVEL };
  }
  if (level === 5) return null;
  if (packet.password !== undefined && packet.username === undefined) return protocolViolation('a password without a user name [MQTT-3.1.2-22]');
  if (packet.username !== undefined && holdsForbiddenCharacters(packet.username)) {
    return protocolViolation('a user name with U+0000 or bytes that are not UTF-8 [MQTT-1.5.3-1] [MQTT-1.5.3-2]');
  }
  if (packet.will) {
    if ((packet.will.qos ?? 0) > 2) return protocolViolation('will QoS 3 [MQTT-3.1.2-14]');
    const topicProblem = topicNameViolation(packet.will.topic, limits);
    if (topicProblem) return { ...topicProblem, reason: `will topic: ${topicProblem.reason}` };
  }
  const fieldBytes = connectFieldsBytes(packet);
  if (packet.length !== undefined && packet.length > fieldBytes) {
    return protocolViolation(`${packet.length - fieldBytes} bytes after the fields of the CONNECT (malformed remaining length)`);
  }
  return null;
}

/**
 * The bytes the fields of an MQTT 3.1 or 3.1.1 CONNECT take once encoded [MQTT-3.1]: the
 * remaining length of a well-formed CONNECT. The parser decodes each run of 1 to 3 bytes that is
 * not UTF-8 as U+FFFD, which encodes in 3, so with a U+FFFD in a string this is an upper bound
 * of what the fields took; without one it is exact.
 */
export function connectFieldsBytes(packet: ConnectPacket): number {
  const string = (text: string) => 2 + Buffer.byteLength(text, 'utf8');
  // Protocol name, protocol level (1), connect flags (1), keep alive (2), client identifier.
  let bytes = string(packet.protocolId ?? 'MQTT') + 1 + 1 + 2 + string(packet.clientId);
  if (packet.will) bytes += string(packet.will.topic) + 2 + Buffer.byteLength(packet.will.payload);
  if (packet.username !== undefined) bytes += string(packet.username);
  if (packet.password !== undefined) bytes += 2 + packet.password.length;
  return bytes;
}

/** What makes a topic name (a PUBLISH's or a will's) unusable, or null. */
function topicNameViolation(topic: string, limits: TopicLimits): Violation | null {
  if (topic.length === 0) return invalidTopic('an empty topic name [MQTT-4.7.3-1]');
  if (topic.includes('+') || topic.includes('#')) return invalidTopic(`a wildcard in the topic name "${topic}" [MQTT-3.3.2-2] [MQTT-4.7.1-1]`);
  const broken = topicLimitBroken(topic, limits);
  if (!broken) return null;
  return {
    limit: broken,
    reason: broken === 'invalid_topic' ? 'U+0000 or bytes that are not UTF-8 in the topic name [MQTT-1.5.3-1] [MQTT-1.5.3-2]' : `topic name over the ${broken === 'topic_length' ? 'length' : 'level'} limit`,
  };
}

/**
 * A PUBLISH's topic is also checked in aedes (wildcards, empty) and in authorizePublish (the
 * configured limits); here the wildcards and the empty topic, so that they are counted too.
 */
function publishViolation(packet: PublishPacket): Violation | null {
  if (packet.qos > 0 && packet.messageId === 0) return protocolViolation('PUBLISH with packet identifier 0 [MQTT-2.3.1-1]');
  if (packet.topic.length === 0) return invalidTopic('an empty topic name [MQTT-4.7.3-1]');
  if (packet.topic.includes('+') || packet.topic.includes('#')) return invalidTopic(`a wildcard in the topic name "${packet.topic}" [MQTT-3.3.2-2]`);
  return null;
}

function subscribeViolation(packet: SubscribePacket): Violation | null {
  if (packet.messageId === 0) return protocolViolation('SUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]');
  if (packet.subscriptions.length === 0) return protocolViolation('SUBSCRIBE without a filter [MQTT-3.8.3-3]');
  for (const { topic } of packet.subscriptions) {
    const problem = filterViolation(topic);
    if (problem) return problem;
  }
  return null;
}

function unsubscribeViolation(packet: UnsubscribePacket): Violation | null {
  if (packet.messageId === 0) return protocolViolation('UNSUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]');
  if (packet.unsubscriptions.length === 0) return protocolViolation('UNSUBSCRIBE without a filter [MQTT-3.10.3-2]');
  for (const filter of packet.unsubscriptions) {
    const problem = filterViolation(filter);
    if (problem) return problem;
  }
  return null;
}

/** A filter MQTT forbids closes the connection; one over a configured limit only gets 0x80 (authorizeSubscribe). */
function filterViolation(filter: string): Violation | null {
  if (holdsForbiddenCharacters(filter)) return invalidTopic('U+0000 or bytes that are not UTF-8 in a filter [MQTT-1.5.3-1] [MQTT-1.5.3-2]');
  if (!isWellFormedFilter(filter)) return invalidTopic(`malformed filter "${filter}" [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]`);
  return null;
}
