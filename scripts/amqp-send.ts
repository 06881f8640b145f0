/**
 * Publishes one message on AMQP, as an enterprise system would, for trying the downlink:
 *   npm run -s send -- EXCHANGE ROUTING_KEY PAYLOAD [--header NAME=VALUE ...]
 * Waits for RabbitMQ's confirm. AMQP_URL as for the bridge.
 */
import amqplib from 'amqplib';
import { parseArgs, parseHeaderArgs } from '../src/cli/args.js';
import { DEFAULT_AMQP_URL } from '../src/config/schema.js';
import { UsageError } from '../src/errors.js';

const USAGE = 'usage: npm run -s send -- EXCHANGE ROUTING_KEY PAYLOAD [--header NAME=VALUE ...]';

/** The message to send, from the command line; `--header` as `route --amqp` takes it. */
function parseCommandLine(argv: readonly string[]): { exchange: string; routingKey: string; payload: string; headers: Record<string, string> } {
  const { positional, repeated } = parseArgs(argv, [{ name: 'header', takesValue: true, repeatable: true }]);
  const [exchange, routingKey, payload = ''] = positional;
  if (exchange === undefined || routingKey === undefined || positional.length > 3) throw new UsageError(USAGE);
  return { exchange, routingKey, payload, headers: parseHeaderArgs(repeated.get('header') ?? []) };
}

let message;
try {
  message = parseCommandLine(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(error.message === USAGE ? USAGE : `${error.message}\n${USAGE}`);
  process.exit(2);
}
const { exchange, routingKey, payload, headers } = message;
const connection = await amqplib.connect(process.env.AMQP_URL ?? DEFAULT_AMQP_URL);
const channel = await connection.createConfirmChannel();
channel.publish(exchange, routingKey, Buffer.from(payload), { persistent: true, headers });
await channel.waitForConfirms();
await connection.close();
console.error(`sent to exchange "${exchange}" with routing key "${routingKey}"`);
