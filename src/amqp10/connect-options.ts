import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { ConnectionOptions } from 'rhea';
import type { BridgeConfig } from '../config/schema.js';
import { saslMechanisms, type SaslMechanism } from './rhea-internals.js';

const DEFAULT_PORT = { 'amqp:': 5672, 'amqps:': 5671 } as const;

/**
 * The SASL mechanism for the URL and TLS settings: PLAIN with a user and a password, EXTERNAL with
 * a client certificate and no password (the certificate is the identity), ANONYMOUS otherwise.
 */
export function saslMechanismOf(config: BridgeConfig['amqp']): SaslMechanism {
  const url = new URL(config.url);
  if (url.password !== '') return 'PLAIN';
  if (url.protocol === 'amqps:' && config.tls?.cert !== undefined) return 'EXTERNAL';
  return 'ANONYMOUS';
}

/** The container id: the configured one, or one naming this host and process. */
export function containerIdOf(config: BridgeConfig['amqp']): string {
  return config.containerId ?? `mqtt-amqp-bridge-${hostname()}-${process.pid}`;
}

/**
 * rhea's options for one connection attempt (the bridge reconnects itself, with the backoff of
 * `amqp.reconnect`): host and port from the URL, TLS for amqps, SASL, the idle timeout.
 */
export function connectOptions(config: BridgeConfig['amqp']): ConnectionOptions {
  const url = new URL(config.url);
  const tls = url.protocol === 'amqps:';
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const common = {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    // The open frame's hostname: Azure Service Bus and others route by it.
    hostname: url.hostname,
    port: url.port === '' ? DEFAULT_PORT[tls ? 'amqps:' : 'amqp:'] : Number(url.port),
    container_id: containerIdOf(config),
    idle_time_out: config.idleTimeoutSeconds * 1000,
    reconnect: false,
    tcp_no_delay: true, // as for AMQP 0-9-1 (amqp/connect-options.ts): no Nagle delay on publishes
    sasl_mechanisms: saslMechanisms(saslMechanismOf(config), username, password),
  };
  if (!tls) return { ...common, transport: 'tcp' };
  const files = config.tls ?? {};
  return {
    ...common,
    transport: 'tls',
    ...(files.ca ? { ca: [readFileSync(files.ca)] } : {}),
    ...(files.cert && files.key ? { cert: readFileSync(files.cert), key: readFileSync(files.key) } : {}),
    servername: files.servername ?? url.hostname,
  };
}
