import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { hashPassword } from '../../src/auth/passwords.js';
import { uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { startTestBridge, transientExchange } from '../helpers/bridge.js';
import { makeCertificates } from '../helpers/certs.js';
import { captureLogs } from '../helpers/log-capture.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';
import { rabbitmqctl } from '../helpers/rabbitmqctl.js';
import { TlsTerminatingProxy } from '../helpers/tls-proxy.js';

// Adds a RabbitMQ user with a password no other test uses, and always deletes it.

test('secrets - a whole run at debug level logs no AMQP password, no MQTT password and no TLS key', async () => {
  const amqpUser = uniqueName('bridge-secrets');
  const amqpPassword = `amqp-${randomBytes(12).toString('hex')}`;
  const mqttPassword = `mqtt-${randomBytes(12).toString('hex')}`;
  const wrongPassword = `wrong-${randomBytes(12).toString('hex')}`;
  const certs = makeCertificates('sensor-1');
  const keyLines = readFileSync(certs.serverKey, 'utf8').split('\n').filter((line) => line.length > 20 && !line.startsWith('-----'));
  const { logger, lines } = captureLogs('trace');
  let proxy: TlsTerminatingProxy | undefined;
  try {
    await rabbitmqctl('add_user', amqpUser, amqpPassword);
    proxy = await TlsTerminatingProxy.start({ cert: certs.read(certs.serverCert), key: certs.read(certs.serverKey), ca: certs.read(certs.ca) });
    await rabbitmqctl('set_permissions', amqpUser, '.*', '.*', '.*');
    // First a URL with a wrong password (so connection failures are logged), then the right one.
    for (const password of [wrongPassword, amqpPassword]) {
      const bridge = await startTestBridge(
        {
          mqtt: {
            listeners: [
              { type: 'tcp', host: '127.0.0.1', port: 0 },
              { type: 'tls', host: '127.0.0.1', port: 0, cert: certs.serverCert, key: certs.serverKey },
            ],
          },
          amqp: {
            url: `amqps://${amqpUser}:${password}@127.0.0.1:${proxy.port}`,
            tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
            reconnect: { initialDelayMs: 50, maxDelayMs: 100 },
          },
          uplink: [{ name: 'all', topic: '#', exchange: 'amq.topic', routingKey: '{#}' }],
          auth: { users: [{ username: 'sensor-1', password: await hashPassword(mqttPassword) }] },
        },
        { logger, waitForReady: password === amqpPassword },
      );
      try {
        if (password === wrongPassword) await waitFor(() => lines.some((line) => line.msg === 'AMQP connection attempt failed'), 'a refused AMQP login');
        for (const attempt of [mqttPassword, wrongPassword]) {
          const client = await RawMqttClient.open('tcp', bridge.url('tcp'));
          client.sendConnect({ clientId: uniqueName('s'), username: 'sensor-1', password: attempt });
          await client.next('connack', 20_000);
          client.destroy();
        }
      } finally {
        await bridge.stop();
      }
    }
  } finally {
    await proxy?.close();
    await rabbitmqctl('delete_user', amqpUser).catch(() => '');
  }
  assert.ok(lines.length > 20, `a real run was logged (${lines.length} lines)`);
  assert.ok(lines.some((line) => line.msg === 'login refused'), 'failed logins were logged');
  const text = JSON.stringify(lines);
  for (const secret of [amqpPassword, wrongPassword, mqttPassword, ...keyLines]) {
    assert.ok(!text.includes(secret), `a secret appears in the logs: ${secret.slice(0, 12)}...`);
  }
  assert.ok(text.includes(amqpUser), 'the logs do name the AMQP user (only the password is hidden)');
});

test('secrets - fields that only share a name with a secret are logged as they are: a downlink binding key, the AMQP user', async () => {
  const commands = uniqueName('secrets-commands');
  const queue = uniqueName('secrets-downlink');
  const { logger, lines } = captureLogs('info');
  const bridge = await startTestBridge(
    {
      amqp: { exchanges: [transientExchange(commands)] },
      downlink: [{ name: 'commands', exchange: commands, routingKey: '{deviceId}.#', topic: 'devices/{deviceId}/commands/{#}', qos: 1, queueName: queue }],
    },
    { logger },
  );
  try {
    await waitFor(() => lines.some((line) => line.msg === 'downlink consumer started'), 'the downlink consumer');
  } finally {
    await bridge.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(queue);
      await channel.deleteExchange(commands);
    }).catch(() => {});
  }
  const started = lines.find((line) => line.msg === 'downlink consumer started')!;
  assert.deepEqual(started.binding, { exchange: commands, key: '*.#' });
  assert.equal(started.queue, queue);
  const forwarding = lines.find((line) => typeof line.msg === 'string' && line.msg.startsWith('forwarding to AMQP at '));
  assert.match(String(forwarding?.amqp), /^amqps?:\/\/[^:@/]+:\*\*\*@/, 'the AMQP URL is logged with its user and the password replaced');
});
