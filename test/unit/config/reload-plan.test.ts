import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hashPassword } from '../../../src/auth/passwords.js';
import { loadConfigFile, loadConfigText } from '../../../src/config/load.js';
import { planReload, RELOAD_POLICY } from '../../../src/config/reload-plan.js';
import { configSchema } from '../../../src/config/schema.js';

const FILE = 'conf/test.yaml';
const load = (text: string) => loadConfigText(text, FILE, { env: {} });

test('planReload - every section of the configuration has a reload policy in the one table', () => {
  assert.deepEqual(Object.keys(RELOAD_POLICY).sort(), Object.keys(configSchema.shape).sort());
});

test('planReload - an optional mqtt or amqp setting added on reload is reported, and so is one removed', () => {
  const without = load('amqp: { url: "amqps://rabbit:5671" }\n');
  const withThem = load('mqtt: { sessionFile: /var/lib/bridge/sessions.json }\namqp: { url: "amqps://rabbit:5671", tls: { servername: rabbit.example } }\n');
  assert.deepEqual(planReload(without, withThem).restartRequired, ['mqtt.sessionFile', 'amqp.tls']);
  assert.deepEqual(planReload(withThem, without).restartRequired, ['mqtt.sessionFile', 'amqp.tls']);
  assert.deepEqual(planReload(without, withThem).applied, []);
  assert.equal(planReload(without, withThem).effective.mqtt.sessionFile, undefined, 'kept as it was until a restart');
  assert.equal(planReload(withThem, without).effective.amqp.tls?.servername, 'rabbit.example');
});

test('planReload - a changed listener and budget are reported and kept; amqp.exchanges is applied (a reload declares it)', () => {
  const before = load('mqtt: { listeners: [{ type: tcp, port: 1883 }] }\n');
  const after = load('mqtt: { listeners: [{ type: tcp, port: 1884 }] }\namqp: { exchanges: [{ name: e }] }\nflow: { maxPendingMessages: 5 }\n');
  const plan = planReload(before, after);
  assert.deepEqual(plan.restartRequired, ['mqtt.listeners', 'flow.maxPendingMessages']);
  assert.deepEqual(plan.applied, ['amqp.exchanges']);
  assert.equal(plan.effective.mqtt.listeners[0]!.port, 1883);
  assert.equal(plan.effective.flow.maxPendingMessages, before.flow.maxPendingMessages);
  assert.deepEqual(plan.effective.amqp.exchanges.map((exchange) => exchange.name), ['e']);
});

test('planReload - the retained and QoS 2 state limits need a restart (the ledger counts against the limits it started with)', () => {
  const before = load('mqtt: { maxRetainedMessages: 10 }\n');
  const after = load('mqtt: { maxRetainedMessages: 20, maxRetainedBytesPerUser: 5, maxPendingQos2BytesPerSession: 320 }\n');
  assert.deepEqual(planReload(before, after).restartRequired, ['mqtt.maxRetainedMessages', 'mqtt.maxRetainedBytesPerUser', 'mqtt.maxPendingQos2BytesPerSession']);
  assert.deepEqual(planReload(before, after).applied, []);
});

test('planReload - names each reloadable section that changed and takes it; nothing for an unchanged file', () => {
  const before = load('uplink: [{ name: a, topic: "#", exchange: e, routingKey: "{#}" }]\nlog: { level: info }\n');
  const after = load(
    'uplink: [{ name: a, topic: "#", exchange: e2, routingKey: "{#}" }]\ndownlink: [{ name: d, queue: q, topic: t }]\nacl: [{ allow: publish, topic: "#" }]\nlog: { level: debug }\n',
  );
  const plan = planReload(before, after);
  assert.deepEqual(plan.applied, ['uplink', 'downlink', 'acl', 'log.level']);
  assert.equal(plan.effective.uplink[0]!.exchange, 'e2');
  assert.equal(plan.effective.log.level, 'debug');
  assert.deepEqual(plan.effective.acl, after.acl);
  const unchanged = planReload(before, load('uplink: [{ name: a, topic: "#", exchange: e, routingKey: "{#}" }]\nlog: { level: info }\n'));
  assert.deepEqual([unchanged.applied, unchanged.restartRequired], [[], []]);
  assert.deepEqual(unchanged.effective, before);
});

test('planReload - removing the acl section applies (no ACL any more)', () => {
  const plan = planReload(load('acl: [{ allow: publish, topic: "#" }]\n'), load(''));
  assert.deepEqual(plan.applied, ['acl']);
  assert.equal(plan.effective.acl, undefined);
  assert.equal('acl' in plan.effective, false);
});

test('planReload - a change to the users file alone is an auth reload', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'bridge-reload-plan-'));
  const file = join(folder, 'bridge.yaml');
  writeFileSync(file, 'auth: { usersFile: users.yaml }\n');
  const users = join(folder, 'users.yaml');
  writeFileSync(users, `users:\n  - { username: old-user, password: "${await hashPassword('pw')}" }\n`);
  const running = loadConfigFile(file, { env: {} });
  writeFileSync(users, `users:\n  - { username: new-user, password: "${await hashPassword('pw')}" }\n`);
  const next = loadConfigFile(file, { env: {} });
  assert.deepEqual(planReload(running, next).applied, ['auth']);
  assert.deepEqual(planReload(running, next).restartRequired, []);
  assert.deepEqual(
    next.auth?.users.map((user) => user.username),
    ['new-user'],
  );
});
