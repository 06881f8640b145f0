import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { test } from 'node:test';
import { connectOptions, containerIdOf, saslMechanismOf } from '../../../src/amqp10/connect-options.js';
import { configSchema, type BridgeConfig } from '../../../src/config/schema.js';
import { makeCertificates } from '../../helpers/certs.js';

const amqp = (input: Record<string, unknown>): BridgeConfig['amqp'] => (configSchema.parse({ amqp: { protocol: '1.0', ...input } }) as BridgeConfig).amqp;

test('amqp10 connect options - SASL: PLAIN with a password, EXTERNAL with a client certificate and none, ANONYMOUS otherwise', () => {
  assert.equal(saslMechanismOf(amqp({ url: 'amqp://u:p@h' })), 'PLAIN');
  assert.equal(saslMechanismOf(amqp({ url: 'amqp://h' })), 'ANONYMOUS');
  assert.equal(saslMechanismOf(amqp({ url: 'amqp://u@h' })), 'ANONYMOUS');
  assert.equal(saslMechanismOf(amqp({ url: 'amqps://h', tls: { cert: 'c.pem', key: 'k.pem' } })), 'EXTERNAL');
  assert.equal(saslMechanismOf(amqp({ url: 'amqps://u:p@h', tls: { cert: 'c.pem', key: 'k.pem' } })), 'PLAIN');
});

test('amqp10 connect options - host, default ports, idle timeout in ms, no reconnect of rhea\'s own, the container id', () => {
  const plain = connectOptions(amqp({ url: 'amqp://u:p%40ss@broker.example', idleTimeoutSeconds: 20, containerId: 'c1' })) as unknown as Record<string, unknown>;
  assert.equal(plain.host, 'broker.example');
  assert.equal(plain.hostname, 'broker.example');
  assert.equal(plain.port, 5672);
  assert.equal(plain.transport, 'tcp');
  assert.equal(plain.idle_time_out, 20_000);
  assert.equal(plain.reconnect, false);
  assert.equal(plain.container_id, 'c1');
  assert.equal(plain.tcp_no_delay, true, 'no Nagle delay on publishes');
  assert.equal(containerIdOf(amqp({})), `mqtt-amqp-bridge-${hostname()}-${process.pid}`);
  const tls = connectOptions(amqp({ url: 'amqps://[::1]' })) as unknown as Record<string, unknown>;
  assert.equal(tls.port, 5671);
  assert.equal(tls.transport, 'tls');
  assert.equal(tls.host, '::1');
});

test('amqp10 connect options - TLS files are read for amqps', () => {
  const certs = makeCertificates('bridge');
  const options = connectOptions(amqp({ url: 'amqps://h:5999', tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey, servername: 'broker' } })) as unknown as Record<string, unknown>;
  assert.equal(options.port, 5999);
  assert.ok(Array.isArray(options.ca) && Buffer.isBuffer(options.ca[0]));
  assert.ok(Buffer.isBuffer(options.cert) && Buffer.isBuffer(options.key));
  assert.equal(options.servername, 'broker');
});
