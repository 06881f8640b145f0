import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { hashPassword } from '../../src/auth/passwords.js';
import { deleteExchanges, TestConsumer, uniqueName } from '../helpers/amqp.js';
import { forwardAllTo, startTestBridge, type TestBridge } from '../helpers/bridge.js';
import { makeCertificates, type TestCertificates } from '../helpers/certs.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

const exchange = uniqueName('tls');
let certs: TestCertificates;
let bridge: TestBridge;
let consumer: TestConsumer;

before(async () => {
  certs = makeCertificates('sensor-1');
  const files = { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca };
  bridge = await startTestBridge({
    mqtt: {
      listeners: [
        { type: 'tls', host: '127.0.0.1', port: 0, ...files, clientCertificates: 'required' },
        { type: 'tls', host: '127.0.0.1', port: 0, ...files, clientCertificates: 'optional' },
        { type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', ...files, clientCertificates: 'required' },
        { type: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', ...files, clientCertificates: 'optional' },
      ],
    },
    ...forwardAllTo(exchange),
    auth: { users: [{ username: 'sensor-2', password: await hashPassword('pw-2') }], certificateUsername: 'cn' },
    acl: [{ allow: 'publish', topic: 'devices/{username}/#' }],
  });
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await bridge?.stop();
  await deleteExchanges(exchange);
});

type Kind = 'tls' | 'wss';
type Mode = 'required' | 'optional';

function url(kind: Kind, mode: Mode): string {
  const listeners = bridge.bridge.listeners.filter((listener) => listener.type === kind);
  const listener = listeners[mode === 'required' ? 0 : 1]!;
  return kind === 'tls' ? `mqtts://127.0.0.1:${listener.port}` : `wss://127.0.0.1:${listener.port}/mqtt`;
}

/** Connects with the given TLS material and publishes; the CONNACK return code, or how the connection was refused. */
async function attempt(kind: Kind, mode: Mode, options: { cert?: 'client' | 'rogue'; username?: string; password?: string }): Promise<number | string> {
  const tls = {
    ca: certs.read(certs.ca),
    rejectUnauthorized: true,
    ...(options.cert === 'client' ? { cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey) } : {}),
    ...(options.cert === 'rogue' ? { cert: certs.read(certs.rogueCert), key: certs.read(certs.rogueKey) } : {}),
  };
  let client: RawMqttClient;
  try {
    client = await RawMqttClient.open(kind, url(kind, mode), tls);
  } catch {
    return 'handshake refused';
  }
  try {
    client.sendConnect({ clientId: uniqueName('tls'), ...(options.username ? { username: options.username, password: options.password ?? '' } : {}) });
    const connack = await client.nextOrClose('connack');
    if (!connack) return 'handshake refused';
    const code = (connack as unknown as { returnCode: number }).returnCode;
    if (code !== 0) return code;
    client.send({ cmd: 'publish', topic: `devices/${options.username ?? 'sensor-1'}/hello`, payload: Buffer.from(`${kind}-${mode}`), qos: 1, messageId: 1, dup: false, retain: false });
    assert.ok(await client.nextOrClose('puback'), 'the publish is acknowledged');
    return 0;
  } finally {
    client.destroy();
  }
}

for (const kind of ['tls', 'wss'] as const) {
  describe(`${kind} listeners`, () => {
    test(`${kind} - required: a verified client certificate is the identity; none, or one from another CA, is refused`, async () => {
      assert.equal(await attempt(kind, 'required', { cert: 'client' }), 0, 'CN=sensor-1, no password');
      assert.equal(await attempt(kind, 'required', {}), 'handshake refused');
      assert.equal(await attempt(kind, 'required', { cert: 'rogue' }), 'handshake refused');
    });

    test(`${kind} - optional: a certificate identifies; without one a password does; without either CONNACK 5`, async () => {
      assert.equal(await attempt(kind, 'optional', { cert: 'client' }), 0);
      assert.equal(await attempt(kind, 'optional', { username: 'sensor-2', password: 'pw-2' }), 0);
      assert.equal(await attempt(kind, 'optional', {}), 5);
      assert.equal(await attempt(kind, 'optional', { username: 'sensor-2', password: 'wrong' }), 4);
      assert.equal(await attempt(kind, 'optional', { cert: 'rogue' }), 5, 'an unverified certificate names nobody');
      assert.equal(await attempt(kind, 'optional', { cert: 'client', username: 'sensor-2', password: 'pw-2' }), 4, 'a username other than the certificate');
    });
  });
}

test('tls - what the certificate identities published arrived, under their own names only', async () => {
  const keys = consumer.messages.map((message) => `${message.fields.routingKey} ${message.content.toString()}`).sort();
  assert.deepEqual(keys, [
    'devices.sensor-1.hello tls-optional',
    'devices.sensor-1.hello tls-required',
    'devices.sensor-1.hello wss-optional',
    'devices.sensor-1.hello wss-required',
    'devices.sensor-2.hello tls-optional',
    'devices.sensor-2.hello wss-optional',
  ]);
});

test('tls - TLS 1.1 is refused: 1.2 is the minimum', async () => {
  const legacy = { ca: certs.read(certs.ca), maxVersion: 'TLSv1.1' as const, minVersion: 'TLSv1' as const, ciphers: 'DEFAULT@SECLEVEL=0' };
  const handshake = (port: number) =>
    new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ...legacy }, () => {
        resolve(`connected with ${socket.getProtocol()}`);
        socket.destroy();
      });
      socket.on('error', () => resolve('refused'));
    });
  // The control: this client does speak TLS 1.1 to a server that allows it...
  const control = createTlsServer({ cert: certs.read(certs.serverCert), key: certs.read(certs.serverKey), minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  try {
    assert.equal(await handshake((control.address() as AddressInfo).port), 'connected with TLSv1.1');
  } finally {
    control.close();
  }
  // ...and the bridge refuses it.
  assert.equal(await handshake(Number(new URL(url('tls', 'optional')).port)), 'refused');
});

test('tls - reloadCertificates (SIGHUP) makes new connections use the certificate files as they are now', async () => {
  const renewed = makeCertificates('sensor-1');
  const port = Number(new URL(url('tls', 'optional')).port);
  const fingerprint = (ca: Buffer) =>
    new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca }, () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.destroy();
      });
      socket.on('error', () => resolve('refused'));
    });
  const before = await fingerprint(certs.read(certs.ca));
  assert.notEqual(before, 'refused');
  // Ops replace the files (a renewed certificate from another CA), then send SIGHUP.
  copyFileSync(renewed.serverCert, certs.serverCert);
  copyFileSync(renewed.serverKey, certs.serverKey);
  assert.equal(await fingerprint(certs.read(certs.ca)), before, 'nothing changes before the reload');
  bridge.bridge.reloadCertificates();
  const after = await fingerprint(certs.read(renewed.ca));
  assert.notEqual(after, 'refused');
  assert.notEqual(after, before);
  assert.equal(await fingerprint(certs.read(certs.ca)), 'refused', 'the old CA no longer verifies the server');
});
