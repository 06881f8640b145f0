import { MappingError, RenderError } from '../errors.js';
import { levelToWord } from './encoding.js';
import { compilePattern, type CompiledPattern } from './pattern.js';
import { compileTemplate, UPLINK_BUILTINS, type CompiledTemplate, type TemplateContext } from './template.js';
import { TopicTrie } from './topic-trie.js';
import { RuleError } from './rule-error.js';
import { TOPIC_SYNTAX, assertShortString } from './limits.js';
import { isAddressDestination, type AddressDestination, type Destination, type ExchangeDestination } from './destination.js';

/** String AMQP properties a rule may set; each is a template. */
export const UPLINK_STRING_PROPERTIES = ['contentType', 'contentEncoding', 'type', 'appId', 'correlationId', 'replyTo'] as const;
export type UplinkStringProperty = (typeof UPLINK_STRING_PROPERTIES)[number];

export type UplinkPropertiesConfig = { readonly [K in UplinkStringProperty]?: string | undefined } & {
  readonly priority?: number | undefined;
  readonly expirationMs?: number | undefined;
};

export interface UplinkRuleConfig {
  readonly name: string;
  readonly topic: string;
  /** AMQP 0-9-1: the exchange and routing key templates... */
  readonly exchange?: string | undefined;
  readonly routingKey?: string | undefined;
  /** ...or AMQP 1.0: the address and subject templates (a rule with `address` is a 1.0 rule). */
  readonly address?: string | undefined;
  readonly subject?: string | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly properties?: UplinkPropertiesConfig | undefined;
}

/** One MQTT publish as the uplink sees it. */
export interface UplinkPublish {
  readonly topic: string;
  readonly clientId: string;
  readonly username?: string | undefined;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
}

export type HeaderValue = string | number | boolean;

export interface UplinkProperties {
  contentType?: string;
  contentEncoding?: string;
  type?: string;
  appId?: string;
  correlationId?: string;
  replyTo?: string;
  priority?: number;
  /** Per-message TTL in milliseconds, as AMQP carries it (a string of digits). */
  expiration?: string;
  /** deliveryMode 2 for QoS 1/2, 1 for QoS 0. */
  persistent: boolean;
}

/** What one publish becomes on AMQP, apart from the per-message `messageId` and `timestamp`. */
export type UplinkRoute = Destination & {
  readonly rule: string;
  readonly headers: Record<string, HeaderValue>;
  readonly properties: UplinkProperties;
};

/** The default routing key of a 0-9-1 rule: the topic, as RabbitMQ's MQTT plugin routes it. */
export const DEFAULT_ROUTING_KEY = '{topic}';

/** Headers the bridge sets on every uplink message; rules may not set them. */
export const HEADER_TOPIC = 'x-mqtt-topic';
export const HEADER_QOS = 'x-mqtt-qos';
export const HEADER_CLIENT_ID = 'x-mqtt-client-id';
export const HEADER_RETAIN = 'x-mqtt-retain';
/** Header names with this prefix belong to the bridge (now and in later versions). */
export const BRIDGE_HEADER_PREFIX = 'x-mqtt-';

interface CompiledUplinkRule {
  readonly name: string;
  readonly pattern: CompiledPattern;
  /** The exchange (0-9-1) or the address (1.0). */
  readonly target: CompiledTemplate;
  /** The routing key (0-9-1) or the subject (1.0; null: none). */
  readonly key: CompiledTemplate | null;
  readonly protocol: '0-9-1' | '1.0';
  readonly headers: ReadonlyArray<readonly [string, CompiledTemplate]>;
  readonly stringProperties: ReadonlyArray<readonly [UplinkStringProperty, CompiledTemplate]>;
  readonly priority: number | undefined;
  readonly expiration: string | undefined;
}

/**
 * Compiles one rule. Every template is compiled even after one fails, so that all of a
 * rule's problems are reported together: the first is thrown, all are pushed to `problems`.
 */
export function compileUplinkRule(rule: UplinkRuleConfig, problems: MappingError[] = []): CompiledUplinkRule {
  const before = problems.length;
  const attempt = <T>(compile: () => T): T | undefined => {
    try {
      return compile();
    } catch (error) {
      if (!(error instanceof MappingError)) throw error;
      problems.push(error);
      return undefined;
    }
  };
  const pattern = attempt(() => compilePattern(rule.topic, TOPIC_SYNTAX));
  if (!pattern) throw problems[before]!;
  const scope = (field: string, encode: ((value: string) => string) | null, targetSeparator: '.' | null) =>
    ({ field, pattern, builtins: UPLINK_BUILTINS, headers: false, encode, targetSeparator }) as const;
  const byAddress = rule.address !== undefined;
  const [targetField, keyField] = byAddress ? (['address', 'subject'] as const) : (['exchange', 'routingKey'] as const);
  const keySource = byAddress ? rule.subject : (rule.routingKey ?? DEFAULT_ROUTING_KEY);
  const target = attempt(() => compileTemplate((byAddress ? rule.address : rule.exchange) ?? '', scope(targetField, null, null)));
  const key = keySource === undefined ? null : attempt(() => compileTemplate(keySource, scope(keyField, levelToWord, '.')));
  const headers = Object.entries(rule.headers ?? {}).flatMap(([name, template]) => {
    const compiled = attempt(() => {
      if (name.toLowerCase().startsWith(BRIDGE_HEADER_PREFIX)) {
        throw new MappingError(
          'BRIDGE_ERR_TEMPLATE_INVALID',
          `headers.${name}`,
          `header "${name}": headers starting with "${BRIDGE_HEADER_PREFIX}" are set by the bridge and cannot be set by a rule`,
        );
      }
      return compileTemplate(template, scope(`headers.${name}`, null, null));
    });
    return compiled ? [[name, compiled] as const] : [];
  });
  const properties = rule.properties ?? {};
  const stringProperties = UPLINK_STRING_PROPERTIES.flatMap((key) => {
    const template = properties[key];
    const compiled = template === undefined ? undefined : attempt(() => compileTemplate(template, scope(`properties.${key}`, null, null)));
    return compiled ? [[key, compiled] as const] : [];
  });
  if (problems.length > before || !target || key === undefined) throw problems[before]!;
  return {
    name: rule.name,
    pattern,
    target,
    key,
    protocol: byAddress ? '1.0' : '0-9-1',
    headers,
    stringProperties,
    priority: properties.priority,
    expiration: properties.expirationMs === undefined ? undefined : String(properties.expirationMs),
  };
}

/**
 * The uplink rules, compiled once: resolves an MQTT publish to the exchange, routing key,
 * headers and properties of its AMQP message. The first rule whose topic matches wins.
 */
export class UplinkResolver {
  private readonly rules: readonly CompiledUplinkRule[];
  private readonly trie = new TopicTrie();

  constructor(rules: readonly UplinkRuleConfig[]) {
    this.rules = rules.map((rule, index) => {
      try {
        return compileUplinkRule(rule);
      } catch (error) {
        if (error instanceof MappingError) throw new RuleError(index, error);
        throw error;
      }
    });
    this.rules.forEach((rule, index) => this.trie.add(rule.pattern, index));
  }

  /** Each 0-9-1 rule's exchange, in the rules' order: its name when the rule gives it literally, null when a placeholder renders it. */
  exchangesOfRules(): Array<{ rule: string; exchange: string | null }> {
    return this.rules.flatMap((rule) => (rule.protocol === '0-9-1' ? [{ rule: rule.name, exchange: rule.target.constant }] : []));
  }

  /** Each 1.0 rule's address, in the rules' order: the address when the rule gives it literally, null when a placeholder renders it. */
  addressesOfRules(): Array<{ rule: string; address: string | null }> {
    return this.rules.flatMap((rule) => (rule.protocol === '1.0' ? [{ rule: rule.name, address: rule.target.constant }] : []));
  }

  /** The name of the rule that takes this topic, or null. */
  match(topic: string): string | null {
    const index = this.trie.match(topic.split('/'));
    return index < 0 ? null : this.rules[index]!.name;
  }

  /** The AMQP message for this publish, or null when no rule matches. Throws RenderError. */
  resolve(publish: UplinkPublish): UplinkRoute | null {
    const levels = publish.topic.split('/');
    const index = this.trie.match(levels);
    if (index < 0) return null;
    const rule = this.rules[index]!;
    const context: TemplateContext = {
      segments: levels,
      source: publish.topic,
      clientId: publish.clientId,
      username: publish.username,
      qos: publish.qos,
    };
    const destination = rule.protocol === '1.0' ? addressOf(rule, context) : exchangeOf(rule, context);
    const headers: Record<string, HeaderValue> = {
      [HEADER_TOPIC]: publish.topic,
      [HEADER_QOS]: publish.qos,
      [HEADER_CLIENT_ID]: publish.clientId,
    };
    if (publish.retain) headers[HEADER_RETAIN] = true;
    for (const [name, template] of rule.headers) headers[name] = template.constant ?? template.render(context);
    const properties: UplinkProperties = { persistent: publish.qos > 0 };
    for (const [key, template] of rule.stringProperties) {
      const value = template.constant ?? template.render(context);
      assertShortString(key, value);
      properties[key] = value;
    }
    if (rule.priority !== undefined) properties.priority = rule.priority;
    if (rule.expiration !== undefined) properties.expiration = rule.expiration;
    // Written out rather than spread: see outboundMessage in pipeline/uplink.ts.
    if (isAddressDestination(destination)) return { rule: rule.name, address: destination.address, subject: destination.subject, headers, properties };
    return { rule: rule.name, exchange: destination.exchange, routingKey: destination.routingKey, headers, properties };
  }
}

function exchangeOf(rule: CompiledUplinkRule, context: TemplateContext): ExchangeDestination {
  let exchange = rule.target.constant;
  if (exchange === null) {
    exchange = rule.target.render(context);
    // A placeholder that renders nothing would publish to the default exchange, which
    // routes by queue name: a device could then reach any queue. Only a literal "" may.
    if (exchange === '') throw new RenderError(`the exchange template "${rule.target.source}" rendered an empty exchange name`);
  }
  assertShortString('exchange', exchange);
  const routingKey = rule.key?.render(context) ?? '';
  assertShortString('routing key', routingKey);
  return { exchange, routingKey };
}

function addressOf(rule: CompiledUplinkRule, context: TemplateContext): AddressDestination {
  const address = rule.target.constant ?? rule.target.render(context);
  if (address === '') throw new RenderError(`the address template "${rule.target.source}" rendered an empty address`);
  return { address, subject: rule.key ? (rule.key.constant ?? rule.key.render(context)) : undefined };
}
