import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashPassword } from '../../../src/auth/passwords.js';
import { loadConfigFile, loadConfigText } from '../../../src/config/load.js';
import { reloadedSections, restartRequiredChanges } from '../../../src/config/reload-plan.js';

const FILE = 'conf/test.yaml';
const load = (text: string) => loadConfigText(text, FILE, { env: {} });

test('restartRequiredChanges - an optional mqtt or amqp setting added on reload is reported, and so is one removed', () => {
  const without = load('amqp: { url: "amqps://rabbit:5671" }\n');
  const withThem = load('mqtt: { sessionFile: /var/lib/bridge/sessions.json }\namqp: { url: "amqps://rabbit:5671", tls: { servername: rabbit.example } }\n');
  assert.deepEqual(restartRequiredChanges(without, withThem), ['mqtt.sessionFile', 'amqp.tls']);
  assert.deepEqual(restartRequiredChanges(withThem, without), ['mqtt.sessionFile', 'amqp.tls']);
  assert.deepEqual(reloadedSections(without, withThem), []);
});

test('restartRequiredChanges - a changed listener and budget are reported; amqp.exchanges is not (a reload declares it)', () => {
  const before = load('mqtt: { listeners: [{ type: tcp, port: 1883 }] }\n');
  const after = load('mqtt: { listeners: [{ type: tcp, port: 1884 }] }\namqp: { exchanges: [{ name: e }] }\nflow: { maxPendingMessages: 5 }\n');
  assert.deepEqual(restartRequiredChanges(before, after), ['mqtt.listeners', 'flow']);
  assert.deepEqual(reloadedSections(before, after), ['amqp.exchanges']);
});

test('restartRequiredChanges - the retained and QoS 2 state limits need a restart (the ledger counts against the limits it started with)', () => {
  const before = load('mqtt: { maxRetainedMessages: 10 }\n');
  const after = load('mqtt: { maxRetainedMessages: 20, maxRetainedBytesPerUser: 5, maxPendingQos2BytesPerSession: 320 }\n');
  assert.deepEqual(restartRequiredChanges(before, after), ['mqtt.maxRetainedMessages', 'mqtt.maxRetainedBytesPerUser', 'mqtt.maxPendingQos2BytesPerSession']);
  assert.deepEqual(reloadedSections(before, after), []);
});

test('reloadedSections - names each reloadable section that changed, and nothing for an unchanged file', () => {
  const before = load('uplink: [{ name: a, topic: "#", exchange: e, routingKey: "{#}" }]\nlog: { level: info }\n');
  const after = load(
    'uplink: [{ name: a, topic: "#", exchange: e2, routingKey: "{#}" }]\ndownlink: [{ name: d, queue: q, topic: t }]\nacl: [{ allow: publish, topic: "#" }]\nlog: { level: debug }\n',
  );
  assert.deepEqual(reloadedSections(before, after), ['uplink', 'downlink', 'acl', 'log.level']);
  assert.deepEqual(reloadedSections(before, load('uplink: [{ name: a, topic: "#", exchange: e, routingKey: "{#}" }]\nlog: { level: info }\n')), []);
});

test('reloadedSections - a change to the users file alone is an auth reload', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'bridge-reload-plan-'));
  const file = join(folder, 'bridge.yaml');
  writeFileSync(file, 'auth: { usersFile: users.yaml }\n');
  const users = join(folder, 'users.yaml');
  writeFileSync(users, `users:\n  - { username: old-user, password: "${await hashPassword('pw')}" }\n`);
  const running = loadConfigFile(file, { env: {} });
  writeFileSync(users, `users:\n  - { username: new-user, password: "${await hashPassword('pw')}" }\n`);
  const next = loadConfigFile(file, { env: {} });
  assert.deepEqual(reloadedSections(running, next), ['auth']);
  assert.deepEqual(restartRequiredChanges(running, next), []);
  assert.deepEqual(
    next.auth?.users.map((user) => user.username),
    ['new-user'],
  );
});
