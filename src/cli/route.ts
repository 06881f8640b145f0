import { loadConfigFile } from '../config/load.js';
import { downlinkQueueName } from '../config/schema.js';
import { RenderError, TopicError, UsageError } from '../errors.js';
import { isAddressDestination } from '../mapping/destination.js';
import { compileDownlinkRules, type DownlinkDelivery } from '../mapping/downlink.js';
import { assertTopicName } from '../mapping/topic.js';
import { UplinkResolver, type UplinkPublish } from '../mapping/uplink.js';
import { readFileSync } from 'node:fs';
import { parseArgs, parseHeaderArgs } from './args.js';
import { readAll, writeLine, type CommandIo } from './io.js';

export const ROUTE_USAGE = `mqtt-amqp-bridge route FILE TOPIC [--client-id ID] [--username U] [--qos 0|1|2]
  mqtt-amqp-bridge route FILE --topics TOPICS_FILE|- [--client-id ID] [--username U] [--qos 0|1|2]
  mqtt-amqp-bridge route FILE --amqp EXCHANGE ROUTING_KEY [--header NAME=VALUE ...]
  mqtt-amqp-bridge route FILE --amqp ADDRESS [SUBJECT] [--header NAME=VALUE ...]   (amqp.protocol "1.0")`;
export const ROUTE_CLIENT_ID_DEFAULT = 'route-cli';

/**
 * `route FILE TOPIC`: prints, as one JSON object, the rule that takes the publish and the AMQP
 * message it becomes (exit 0), or that no rule matches (exit 1). Connects to nothing.
 */
export async function routeCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { positional, options, repeated } = parseArgs(argv, [
    { name: 'client-id', takesValue: true },
    { name: 'username', takesValue: true },
    { name: 'qos', takesValue: true },
    { name: 'amqp', takesValue: false },
    { name: 'header', takesValue: true, repeatable: true },
    { name: 'topics', takesValue: true },
  ]);
  if (options.has('amqp')) return routeDownlink(positional, repeated.get('header') ?? [], io);
  const topicsFile = options.get('topics') as string | undefined;
  if (positional.length !== (topicsFile === undefined ? 2 : 1)) throw new UsageError(`usage: ${ROUTE_USAGE}`);
  const qosText = (options.get('qos') as string | undefined) ?? '0';
  if (!/^[012]$/.test(qosText)) throw new UsageError(`--qos must be 0, 1 or 2, not "${qosText}"`);
  if (topicsFile === undefined) {
    try {
      assertTopicName(positional[1]!);
    } catch (error) {
      if (error instanceof TopicError) throw new UsageError(error.message);
      throw error;
    }
  }
  const config = loadConfigFile(positional[0]!, { env: io.env });
  const resolver = new UplinkResolver(config.uplink);
  const base = {
    clientId: (options.get('client-id') as string | undefined) ?? ROUTE_CLIENT_ID_DEFAULT,
    username: options.get('username') as string | undefined,
    qos: Number(qosText) as 0 | 1 | 2,
    retain: false,
  };
  if (topicsFile === undefined) {
    const routed = routeOne(resolver, { ...base, topic: positional[1]! }, io);
    if (!routed) writeLine(io.stderr, `no uplink rule matches topic "${positional[1]}"; a device publishing it is acknowledged but nothing goes to AMQP`);
    return routed ? 0 : 1;
  }
  // One topic per line (blank lines and lines starting with "#" skipped): one JSON line each,
  // for a golden-file test of a mapping change.
  const text = topicsFile === '-' ? await readStdin(io) : readFileSync(topicsFile, 'utf8');
  let unrouted = 0;
  for (const line of text.split(/\r?\n/)) {
    if (line.length === 0 || line.startsWith('#')) continue;
    try {
      assertTopicName(line);
    } catch (error) {
      if (!(error instanceof TopicError)) throw error;
      writeLine(io.stdout, JSON.stringify({ direction: 'uplink', topic: line, rule: null, error: error.message }));
      unrouted++;
      continue;
    }
    if (!routeOne(resolver, { ...base, topic: line }, io)) unrouted++;
  }
  return unrouted === 0 ? 0 : 1;
}

/** Prints what one publish becomes; false when no rule takes it. */
function routeOne(resolver: UplinkResolver, publish: UplinkPublish, io: CommandIo): boolean {
  let route;
  try {
    route = resolver.resolve(publish);
  } catch (error) {
    if (!(error instanceof RenderError)) throw error;
    writeLine(io.stdout, JSON.stringify({ direction: 'uplink', topic: publish.topic, rule: null, error: error.message }));
    return false;
  }
  if (!route) {
    writeLine(io.stdout, JSON.stringify({ direction: 'uplink', topic: publish.topic, rule: null }));
    return false;
  }
  const { persistent, ...properties } = route.properties;
  const destination = isAddressDestination(route)
    ? { address: route.address, subject: route.subject ?? null, applicationProperties: route.headers, properties: { ...properties, durable: persistent } }
    : { exchange: route.exchange, routingKey: route.routingKey, headers: route.headers, properties: { ...properties, deliveryMode: persistent ? 2 : 1 } };
  writeLine(io.stdout, JSON.stringify({ direction: 'uplink', topic: publish.topic, rule: route.rule, ...destination }));
  return true;
}

function readStdin(io: CommandIo): Promise<string> {
  if (!io.stdin) throw new UsageError('--topics - reads standard input, which is not available');
  return readAll(io.stdin);
}

/**
 * `route FILE --amqp EXCHANGE ROUTING_KEY` (AMQP 1.0: `--amqp ADDRESS [SUBJECT]`): one JSON line
 * per downlink rule that would take the message (rules bound to that exchange, or receiving from
 * that address, whose pattern matches), with the MQTT topic it becomes; exit 1 when none would
 * take it or its topic cannot be rendered.
 */
function routeDownlink(positional: readonly string[], headerArgs: readonly string[], io: CommandIo): number {
  if (positional.length < 2 || positional.length > 3) throw new UsageError(`usage: ${ROUTE_USAGE}`);
  const headers = parseHeaderArgs(headerArgs);
  const config = loadConfigFile(positional[0]!, { env: io.env });
  const byAddress = config.amqp.protocol === '1.0';
  if (!byAddress && positional.length !== 3) throw new UsageError(`usage: ${ROUTE_USAGE}`);
  const [, from, key] = positional as [string, string, string | undefined];
  const source: DownlinkDelivery = byAddress ? { address: from, subject: key, headers } : { exchange: from, routingKey: key!, headers };
  const described = byAddress ? { address: from, subject: key ?? null } : { exchange: from, routingKey: key };
  const resolvers = compileDownlinkRules(config.downlink);
  let routed = 0;
  let failed = 0;
  config.downlink.forEach((rule, index) => {
    if ((byAddress ? rule.address : rule.exchange) !== from) return;
    const base = { direction: 'downlink', ...described, rule: rule.name, ...(byAddress ? {} : { queue: downlinkQueueName(rule) }) };
    try {
      const route = resolvers[index]!.resolve(source);
      if (!route) return;
      writeLine(io.stdout, JSON.stringify({ ...base, topic: route.topic, qos: route.qos, retain: route.retain }));
      routed++;
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      writeLine(io.stdout, JSON.stringify({ ...base, topic: null, error: error.message }));
      writeLine(io.stderr, `rule "${rule.name}" takes the message but ${byAddress ? 'rejects' : 'dead-letters'} it: ${error.message}`);
      failed++;
    }
  });
  if (routed + failed === 0) {
    writeLine(io.stdout, JSON.stringify({ direction: 'downlink', ...described, rule: null }));
    writeLine(
      io.stderr,
      byAddress
        ? `no downlink rule receiving from address "${from}" matches ${key === undefined ? 'a message without a subject' : `subject "${key}"`}`
        : `no downlink rule bound to exchange "${from}" matches routing key "${key}" (rules that consume a named queue are not considered)`,
    );
    return 1;
  }
  return failed > 0 ? 1 : 0;
}
