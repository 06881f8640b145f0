import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import amqplib from 'amqplib';
import { hashPassword } from '../../src/auth/passwords.js';
import { AMQP_URL, TestConsumer, uniqueName, waitFor } from '../helpers/amqp.js';
import { connectClient } from '../helpers/bridge.js';
import { runBridgeProcess, waitForAmqp, type BridgeProcess } from '../helpers/bridge-process.js';

const device = uniqueName('cli-dev');
let bridge: BridgeProcess;
let consumer: TestConsumer;

before(async () => {
  bridge = runBridgeProcess(['--config', 'config/bridge.yaml'], { MQTT_PORT: '0', MQTT_WS_PORT: '0' });
  await waitForAmqp(bridge);
  consumer = await TestConsumer.create([{ exchange: 'telemetry', key: `${device}.#` }]);
});

after(async () => {
  await consumer?.close();
  if (bridge && bridge.child.exitCode === null) bridge.child.kill('SIGKILL');
});

function listenerAddress(type: string): string {
  const line = bridge.lines.find((candidate) => candidate.listener === type);
  assert.ok(line, `a start line for the ${type} listener`);
  return String(line.address);
}

test('run - logs each listener address and the AMQP server, without its password', () => {
  assert.match(listenerAddress('tcp'), /^mqtt:\/\/0\.0\.0\.0:\d+$/);
  assert.match(listenerAddress('ws'), /^ws:\/\/0\.0\.0\.0:\d+\/mqtt$/);
  const amqp = bridge.lines.find((line) => typeof line.msg === 'string' && line.msg.startsWith('forwarding to AMQP at'));
  assert.equal(amqp?.amqp, 'amqp://guest:***@127.0.0.1:5672');
  assert.ok(!JSON.stringify(bridge.lines).includes('guest:guest'), 'no password in the logs');
});

test('run - the example configuration routes telemetry over TCP and WebSocket as docs/mapping.md says', async () => {
  const tcpPort = new URL(listenerAddress('tcp')).port;
  const wsPort = new URL(listenerAddress('ws')).port;
  const tcp = await connectClient(`mqtt://127.0.0.1:${tcpPort}`, { clientId: `${device}-tcp` });
  const ws = await connectClient(`ws://127.0.0.1:${wsPort}/mqtt`, { clientId: `${device}-ws` });
  try {
    await tcp.publishAsync(`devices/${device}/telemetry/temp`, '{"t":21}', { qos: 1 });
    await ws.publishAsync(`devices/${device}/telemetry/room.1/humidity`, '{"h":40}', { qos: 2 });
    const [first, second] = await consumer.waitForCount(2);
    assert.equal(first!.fields.exchange, 'telemetry');
    assert.equal(first!.fields.routingKey, `${device}.temp`);
    assert.equal(first!.content.toString(), '{"t":21}');
    assert.equal(first!.properties.contentType, 'application/json');
    assert.deepEqual(first!.properties.headers, {
      'x-mqtt-topic': `devices/${device}/telemetry/temp`,
      'x-mqtt-qos': 1,
      'x-mqtt-client-id': `${device}-tcp`,
      'x-device-id': device,
    });
    assert.equal(second!.fields.routingKey, `${device}.room/1.humidity`);
    assert.equal(second!.properties.headers?.['x-mqtt-client-id'], `${device}-ws`);
  } finally {
    await tcp.endAsync();
    await ws.endAsync();
  }
});

test('run - the example configuration takes a command from the commands exchange down to the device', async () => {
  const tcpPort = new URL(listenerAddress('tcp')).port;
  const received: string[] = [];
  const client = await connectClient(`mqtt://127.0.0.1:${tcpPort}`, { clientId: `${device}-sub` });
  client.on('message', (topic, payload, packet) => received.push(`${topic} ${payload.toString()} qos${packet.qos}`));
  try {
    await client.subscribeAsync(`devices/${device}/commands/#`, { qos: 1 });
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.publish('commands', `${device}.set.room/1`, Buffer.from('{"celsius":19}'));
    await channel.waitForConfirms();
    await connection.close();
    await waitFor(() => received.length === 1, 'the command at the device');
    assert.deepEqual(received, [`devices/${device}/commands/set/room.1 {"celsius":19} qos1`]);
  } finally {
    await client.endAsync();
  }
});

test('run - SIGHUP re-reads the TLS certificates and the bridge keeps running', async () => {
  bridge.child.kill('SIGHUP');
  await waitFor(() => bridge.lines.some((line) => line.msg === 'TLS certificates re-read'), 'the reload to be logged');
  assert.equal(bridge.child.exitCode, null);
});

test('run - SIGTERM shuts down gracefully with exit code 0', async () => {
  bridge.child.kill('SIGTERM');
  assert.equal(await bridge.exit, 0);
  assert.ok(bridge.lines.some((line) => line.msg === 'stopped'));
});

test('run - a port already in use is a clear error, exit 1', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const failing = runBridgeProcess(['-c', 'config/bridge.yaml'], { MQTT_PORT: String(port), MQTT_WS_PORT: '0' });
    assert.equal(await failing.exit, 1);
    const fatal = failing.lines.find((line) => line.level === 60);
    assert.equal(fatal?.code, 'BRIDGE_ERR_LISTEN');
    assert.match(String(fatal?.msg), new RegExp(`tcp listener cannot listen on 0\\.0\\.0\\.0:${port}: .*EADDRINUSE`));
  } finally {
    blocker.close();
  }
});

test('run - an invalid configuration prints its problems and exits 1', async () => {
  const failing = runBridgeProcess(['--config', 'test/fixtures/config/bad-template.yaml'], {});
  assert.equal(await failing.exit, 1);
  assert.match(String(failing.lines[0]?.stderr), /^test\/fixtures\/config\/bad-template\.yaml:7:17: /);
});

test('run - SIGHUP after a change to the users file alone applies the new users and logs it as an auth reload', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'bridge-cli-users-'));
  const file = join(folder, 'bridge.yaml');
  const usersFile = join(folder, 'users.yaml');
  const writeUser = async (username: string, password: string) =>
    writeFileSync(usersFile, `users:\n  - { username: ${username}, password: "${await hashPassword(password)}" }\n`);
  await writeUser('old-user', 'old-pw');
  writeFileSync(
    file,
    ['mqtt:', '  listeners: [{ type: tcp, host: 127.0.0.1, port: 0 }]', 'amqp:', `  url: ${AMQP_URL}`, 'http: { port: 0 }', 'auth: { usersFile: users.yaml }', ''].join('\n'),
  );
  const running = runBridgeProcess(['--config', file]);
  try {
    await waitForAmqp(running);
    const url = `mqtt://127.0.0.1:${new URL(String(running.lines.find((line) => line.listener === 'tcp')!.address)).port}`;
    await (await connectClient(url, { username: 'old-user', password: 'old-pw' })).endAsync();

    await writeUser('new-user', 'new-pw');
    running.child.kill('SIGHUP');
    const reloaded = () => running.lines.find((line) => typeof line.msg === 'string' && line.msg.startsWith('configuration reloaded'));
    await waitFor(() => reloaded() !== undefined, 'the reload to be logged');
    assert.equal(reloaded()!.msg, 'configuration reloaded: auth');
    await assert.rejects(connectClient(url, { username: 'old-user', password: 'old-pw' }), /Bad username or password/);
    await (await connectClient(url, { username: 'new-user', password: 'new-pw' })).endAsync();
  } finally {
    running.child.kill('SIGTERM');
    await running.exit;
  }
});
