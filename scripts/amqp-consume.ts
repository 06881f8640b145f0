/**
 * Prints what arrives on an exchange, for trying the bridge out:
 *   npm run -s consume -- EXCHANGE [BINDING_KEY]      (BINDING_KEY defaults to "#")
 * Binds a temporary exclusive queue; one JSON line per message. AMQP_URL as for the bridge.
 */
import amqplib from 'amqplib';
import { DEFAULT_AMQP_URL } from '../src/config/schema.js';

const [exchange, bindingKey = '#'] = process.argv.slice(2);
if (!exchange) {
  console.error('usage: npm run -s consume -- EXCHANGE [BINDING_KEY]');
  process.exit(2);
}
const connection = await amqplib.connect(process.env.AMQP_URL ?? DEFAULT_AMQP_URL);
const channel = await connection.createChannel();
const { queue } = await channel.assertQueue('', { exclusive: true });
await channel.bindQueue(queue, exchange, bindingKey);
console.error(`waiting for messages on exchange "${exchange}" with binding key "${bindingKey}" (Ctrl-C to stop)`);
await channel.consume(
  queue,
  (message) => {
    if (!message) return;
    const { headers, ...properties } = message.properties;
    const payload = message.content.toString('utf8');
    console.log(
      JSON.stringify({
        exchange: message.fields.exchange,
        routingKey: message.fields.routingKey,
        headers,
        properties: Object.fromEntries(Object.entries(properties).filter(([, value]) => value !== undefined)),
        payload: Buffer.from(payload, 'utf8').equals(message.content) ? payload : { base64: message.content.toString('base64') },
      }),
    );
  },
  { noAck: true },
);
process.once('SIGINT', () => void connection.close().then(() => process.exit(0)));
