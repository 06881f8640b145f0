/**
 * Publishes one message on AMQP, as an enterprise system would, for trying the downlink:
 *   npm run -s send -- EXCHANGE ROUTING_KEY PAYLOAD [--header NAME=VALUE ...]
 * Waits for RabbitMQ's confirm. AMQP_URL as for the bridge.
 */
import amqplib from 'amqplib';

const args = process.argv.slice(2);
const headers: Record<string, string> = {};
const positional: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--header') {
    const [name, ...value] = (args[++i] ?? '').split('=');
    headers[name!] = value.join('=');
  } else {
    positional.push(args[i]!);
  }
}
const [exchange, routingKey, payload = ''] = positional;
if (exchange === undefined || routingKey === undefined) {
  console.error('usage: npm run -s send -- EXCHANGE ROUTING_KEY PAYLOAD [--header NAME=VALUE ...]');
  process.exit(2);
}
const connection = await amqplib.connect(process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672');
const channel = await connection.createConfirmChannel();
channel.publish(exchange, routingKey, Buffer.from(payload), { persistent: true, headers });
await channel.waitForConfirms();
await connection.close();
console.error(`sent to exchange "${exchange}" with routing key "${routingKey}"`);
