import { readFileSync } from 'node:fs';
import amqplib from 'amqplib';
import type { BridgeConfig } from '../config/schema.js';

/**
 * The socket options amqplib gets: TLS material for amqps, EXTERNAL when a certificate is the
 * identity, and no Nagle delay: amqplib leaves it on, and then a publish written while the last
 * segment is unacknowledged waits for RabbitMQ's (delayed) ACK, which showed as tens of
 * milliseconds in the PUBACK and delivery tails (docs/performance.md).
 */
export function connectOptions(config: BridgeConfig['amqp']): Record<string, unknown> {
  const options: Record<string, unknown> = { clientProperties: { connection_name: config.connectionName }, noDelay: true };
  const url = new URL(config.url);
  if (url.protocol !== 'amqps:' || !config.tls) return options;
  const { ca, cert, key, servername } = config.tls;
  if (ca) options.ca = [readFileSync(ca)];
  if (cert && key) {
    options.cert = readFileSync(cert);
    options.key = readFileSync(key);
  }
  if (servername) options.servername = servername;
  // [RabbitMQ: rabbitmq_auth_mechanism_ssl] the certificate names the user; no password is sent.
  if (url.password === '' && cert !== undefined) options.credentials = amqplib.credentials.external();
  return options;
}
