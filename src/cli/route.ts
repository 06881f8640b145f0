import { loadConfigFile } from '../config/load.js';
import { DOWNLINK_QUEUE_PREFIX } from '../config/schema.js';
import { RenderError, TopicError, UsageError } from '../errors.js';
import { compileDownlinkRules } from '../mapping/downlink.js';
import { assertTopicName } from '../mapping/topic.js';
import { UplinkResolver } from '../mapping/uplink.js';
import { parseArgs } from './args.js';
import { writeLine, type CommandIo } from './io.js';

export const ROUTE_USAGE = `mqtt-amqp-bridge route FILE TOPIC [--client-id ID] [--username U] [--qos 0|1|2]
  mqtt-amqp-bridge route FILE --amqp EXCHANGE ROUTING_KEY [--header NAME=VALUE ...]`;
export const ROUTE_CLIENT_ID_DEFAULT = 'route-cli';

/**
 * `route FILE TOPIC`: prints, as one JSON object, the rule that takes the publish and the AMQP
 * message it becomes (exit 0), or that no rule matches (exit 1). Connects to nothing.
 */
export function routeCommand(argv: readonly string[], io: CommandIo): number {
  const { positional, options, repeated } = parseArgs(argv, [
    { name: 'client-id', takesValue: true },
    { name: 'username', takesValue: true },
    { name: 'qos', takesValue: true },
    { name: 'amqp', takesValue: false },
    { name: 'header', takesValue: true, repeatable: true },
  ]);
  if (options.has('amqp')) return routeDownlink(positional, repeated.get('header') ?? [], io);
  if (positional.length !== 2) throw new UsageError(`usage: ${ROUTE_USAGE}`);
  const [file, topic] = positional as [string, string];
  const qosText = (options.get('qos') as string | undefined) ?? '0';
  if (!/^[012]$/.test(qosText)) throw new UsageError(`--qos must be 0, 1 or 2, not "${qosText}"`);
  try {
    assertTopicName(topic);
  } catch (error) {
    if (error instanceof TopicError) throw new UsageError(error.message);
    throw error;
  }
  const config = loadConfigFile(file, { env: io.env });
  const resolver = new UplinkResolver(config.uplink);
  const publish = {
    topic,
    clientId: (options.get('client-id') as string | undefined) ?? ROUTE_CLIENT_ID_DEFAULT,
    username: options.get('username') as string | undefined,
    qos: Number(qosText) as 0 | 1 | 2,
    retain: false,
  };
  const route = resolver.resolve(publish);
  if (!route) {
    writeLine(io.stdout, JSON.stringify({ direction: 'uplink', topic, rule: null }));
    writeLine(io.stderr, `no uplink rule matches topic "${topic}"; a device publishing it is acknowledged but nothing goes to AMQP`);
    return 1;
  }
  const { persistent, ...properties } = route.properties;
  writeLine(
    io.stdout,
    JSON.stringify({
      direction: 'uplink',
      topic,
      rule: route.rule,
      exchange: route.exchange,
      routingKey: route.routingKey,
      headers: route.headers,
      properties: { ...properties, deliveryMode: persistent ? 2 : 1 },
    }),
  );
  return 0;
}

/**
 * `route FILE --amqp EXCHANGE ROUTING_KEY`: one JSON line per downlink rule whose queue the
 * message would reach (rules bound to that exchange whose pattern matches), with the MQTT
 * topic it becomes; exit 1 when none would take it or its topic cannot be rendered.
 */
function routeDownlink(positional: readonly string[], headerArgs: readonly string[], io: CommandIo): number {
  if (positional.length !== 3) throw new UsageError(`usage: ${ROUTE_USAGE}`);
  const [file, exchange, routingKey] = positional as [string, string, string];
  const headers: Record<string, string> = {};
  for (const header of headerArgs) {
    const equals = header.indexOf('=');
    if (equals <= 0) throw new UsageError(`--header takes NAME=VALUE, not "${header}"`);
    headers[header.slice(0, equals)] = header.slice(equals + 1);
  }
  const config = loadConfigFile(file, { env: io.env });
  const resolvers = compileDownlinkRules(config.downlink.map((rule) => ({ ...rule, qos: rule.qos as 0 | 1 | 2 })));
  let routed = 0;
  let failed = 0;
  config.downlink.forEach((rule, index) => {
    if (rule.exchange !== exchange) return;
    const base = { direction: 'downlink', exchange, routingKey, rule: rule.name, queue: rule.queueName ?? `${DOWNLINK_QUEUE_PREFIX}${rule.name}` };
    try {
      const route = resolvers[index]!.resolve({ exchange, routingKey, headers });
      if (!route) return;
      writeLine(io.stdout, JSON.stringify({ ...base, topic: route.topic, qos: route.qos, retain: route.retain }));
      routed++;
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      writeLine(io.stdout, JSON.stringify({ ...base, topic: null, error: error.message }));
      writeLine(io.stderr, `rule "${rule.name}" takes the message but dead-letters it: ${error.message}`);
      failed++;
    }
  });
  if (routed + failed === 0) {
    writeLine(io.stdout, JSON.stringify({ direction: 'downlink', exchange, routingKey, rule: null }));
    writeLine(io.stderr, `no downlink rule bound to exchange "${exchange}" matches routing key "${routingKey}" (rules that consume a named queue are not considered)`);
    return 1;
  }
  return failed > 0 ? 1 : 0;
}
