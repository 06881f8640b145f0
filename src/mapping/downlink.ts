import { MappingError, RenderError, TopicError } from '../errors.js';
import { wordToLevel } from './encoding.js';
import { ROUTING_KEY_SYNTAX } from './limits.js';
import { bindingKeyOf, compilePattern, patternMatches, type CompiledPattern } from './pattern.js';
import { ADDRESS_DOWNLINK_BUILTINS, compileTemplate, DOWNLINK_BUILTINS, type CompiledTemplate } from './template.js';
import { assertTopicName } from './topic.js';
import { RuleError } from './rule-error.js';
import { HEADER_RETAIN } from './uplink.js';
import { isAddressDestination, type Destination } from './destination.js';

export interface DownlinkRuleConfig {
  readonly name: string;
  /** Bind to this exchange with `routingKey`... */
  readonly exchange?: string | undefined;
  readonly routingKey?: string | undefined;
  /** ...or consume this existing queue... */
  readonly queue?: string | undefined;
  /** ...or (AMQP 1.0) receive from this address, the subjects matching `subject` (absent: every message). */
  readonly address?: string | undefined;
  readonly subject?: string | undefined;
  readonly topic: string;
  readonly qos: 0 | 1 | 2;
  readonly retain?: boolean | undefined;
}

/** One AMQP delivery as the downlink sees it: where it came from, and its headers (AMQP 1.0: application-properties). */
export type DownlinkDelivery = Destination & {
  readonly headers?: Readonly<Record<string, unknown>> | undefined;
};

export interface DownlinkRoute {
  readonly rule: string;
  readonly topic: string;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
}

export interface CompiledDownlinkRule {
  readonly name: string;
  readonly pattern: CompiledPattern;
  /** An AMQP 1.0 rule with a `subject` pattern: a message without a subject does not match it. */
  readonly needsSubject: boolean;
  /** The key the bridge binds its queue with (`{name}` becomes `*`); null for `queue` and `address` rules. */
  readonly bindingKey: string | null;
  readonly topic: CompiledTemplate;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
}

const MATCH_EVERYTHING = '#';

/**
 * Compiles one rule; throws its problem and pushes it to `problems` (as compileUplinkRule does).
 * A downlink rule has at most one to report: its `topic` is checked against the captures of its
 * `routingKey` pattern, so it is not checked at all when the pattern is broken.
 */
export function compileDownlinkRule(rule: DownlinkRuleConfig, problems: MappingError[] = []): CompiledDownlinkRule {
  try {
    return compileDownlinkRuleOrThrow(rule);
  } catch (error) {
    if (error instanceof MappingError) problems.push(error);
    throw error;
  }
}

function compileDownlinkRuleOrThrow(rule: DownlinkRuleConfig): CompiledDownlinkRule {
  const pattern = compilePattern(rule.routingKey ?? rule.subject ?? MATCH_EVERYTHING, ROUTING_KEY_SYNTAX);
  const topic = compileTemplate(rule.topic, {
    field: 'topic',
    pattern,
    builtins: rule.address === undefined ? DOWNLINK_BUILTINS : ADDRESS_DOWNLINK_BUILTINS,
    headers: true,
    encode: wordToLevel,
    targetSeparator: '/',
  });
  if (topic.constant !== null) {
    try {
      assertTopicName(topic.constant);
    } catch (error) {
      throw new MappingError('BRIDGE_ERR_TEMPLATE_INVALID', 'topic', `topic "${rule.topic}": ${(error as TopicError).message}`);
    }
  }
  return {
    name: rule.name,
    pattern,
    needsSubject: rule.subject !== undefined,
    bindingKey: rule.queue === undefined && rule.address === undefined ? bindingKeyOf(pattern) : null,
    topic,
    qos: rule.qos,
    retain: rule.retain ?? false,
  };
}

/** Resolves AMQP deliveries of one downlink rule to MQTT publishes. */
export class DownlinkRuleResolver {
  readonly rule: CompiledDownlinkRule;

  constructor(rule: CompiledDownlinkRule) {
    this.rule = rule;
  }

  /**
   * The MQTT publish for this delivery, or null when its routing key does not match. Throws
   * RenderError. Retained when the rule says so or the delivery carries `x-mqtt-retain: true`
   * (as the uplink sets it for a retained device publish).
   */
  resolve(delivery: DownlinkDelivery): DownlinkRoute | null {
    const [from, key] = isAddressDestination(delivery) ? [delivery.address, delivery.subject] : [delivery.exchange, delivery.routingKey];
    if (key === undefined && this.rule.needsSubject) return null;
    const source = key ?? '';
    const words = source.split('.');
    if (!patternMatches(this.rule.pattern, words, false)) return null;
    const topic = this.rule.topic.constant ?? this.rule.topic.render({ segments: words, source, exchange: from, headers: delivery.headers });
    try {
      assertTopicName(topic);
    } catch (error) {
      throw new RenderError(`the rendered topic "${topic}" is not a valid topic name: ${(error as TopicError).message}`);
    }
    return { rule: this.rule.name, topic, qos: this.rule.qos, retain: this.rule.retain || isTrue(delivery.headers?.[HEADER_RETAIN]) };
  }
}

function isTrue(value: unknown): boolean {
  return value === true || value === 'true' || (Buffer.isBuffer(value) && value.toString() === 'true');
}

export function compileDownlinkRules(rules: readonly DownlinkRuleConfig[]): DownlinkRuleResolver[] {
  return rules.map((rule, index) => {
    try {
      return new DownlinkRuleResolver(compileDownlinkRule(rule));
    } catch (error) {
      if (error instanceof MappingError) throw new RuleError(index, error);
      throw error;
    }
  });
}
