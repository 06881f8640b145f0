import { loadConfigFile } from '../config/load.js';
import { TopicError, UsageError } from '../errors.js';
import { assertTopicName } from '../mapping/topic.js';
import { UplinkResolver } from '../mapping/uplink.js';
import { parseArgs } from './args.js';
import { writeLine, type CommandIo } from './io.js';

export const ROUTE_USAGE = 'mqtt-amqp-bridge route FILE TOPIC [--client-id ID] [--username U] [--qos 0|1|2]';
export const ROUTE_CLIENT_ID_DEFAULT = 'route-cli';

/**
 * `route FILE TOPIC`: prints, as one JSON object, the rule that takes the publish and the AMQP
 * message it becomes (exit 0), or that no rule matches (exit 1). Connects to nothing.
 */
export function routeCommand(argv: readonly string[], io: CommandIo): number {
  const { positional, options } = parseArgs(argv, [
    { name: 'client-id', takesValue: true },
    { name: 'username', takesValue: true },
    { name: 'qos', takesValue: true },
  ]);
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
