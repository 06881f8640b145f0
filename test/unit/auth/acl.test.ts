import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Acl, type AclEntrySettings } from '../../../src/auth/acl.js';

const ops = { clientId: 'ops-console', username: 'ops' };
const sensor = { clientId: 'sensor-1-client', username: 'sensor-1' };
const anonymous = { clientId: 'anon', username: undefined };

test('Acl - a deny entry refuses a broader filter that would receive the denied topics', () => {
  const acl = new Acl([
    { deny: 'subscribe', topic: 'devices/+/secrets/#' },
    { allow: 'subscribe', topic: 'devices/#', users: ['ops'] },
  ]);
  assert.equal(acl.canSubscribe(ops, 'devices/#'), false, 'devices/# would receive devices/x/secrets/*');
  assert.equal(acl.canSubscribe(ops, 'devices/+/+/key'), false, 'devices/x/secrets/key matches both');
  assert.equal(acl.canSubscribe(ops, 'devices/d1/#'), false);
  assert.equal(acl.canSubscribe(ops, 'devices/d1/secrets/key'), false, 'inside the denied filter');
  assert.equal(acl.canSubscribe(ops, 'devices/+/telemetry'), true, 'no topic matches both');
  assert.equal(acl.canSubscribe(ops, 'devices/d1/state/#'), true);
  assert.equal(acl.canSubscribe(ops, 'devices/d1'), true);
});

test('Acl - an allow entry must cover the whole filter asked for', () => {
  const acl = new Acl([{ allow: 'subscribe', topic: 'devices/{username}/commands/#' }]);
  assert.equal(acl.canSubscribe(sensor, 'devices/sensor-1/commands/#'), true);
  assert.equal(acl.canSubscribe(sensor, 'devices/sensor-1/commands/reboot'), true);
  assert.equal(acl.canSubscribe(sensor, 'devices/sensor-1/commands'), true, '"a/#" also covers "a"');
  assert.equal(acl.canSubscribe(sensor, 'devices/+/commands/#'), false, 'broader than granted');
  assert.equal(acl.canSubscribe(sensor, 'devices/sensor-1/#'), false, 'overlapping is not enough for an allow');
  assert.equal(acl.canSubscribe(sensor, 'devices/sensor-2/commands/#'), false);
});

test('Acl - entries are tried in order: the first that applies decides, and what none allows is denied', () => {
  const acl = new Acl([
    { allow: ['publish', 'subscribe'], topic: 'dashboards/#', users: ['ops'] },
    { deny: ['publish', 'subscribe'], topic: 'dashboards/#' },
    { allow: ['publish', 'subscribe'], topic: '#' },
  ]);
  assert.equal(acl.canPublish(ops, 'dashboards/overview'), true);
  assert.equal(acl.canSubscribe(ops, 'dashboards/#'), true);
  assert.equal(acl.canPublish(sensor, 'dashboards/overview'), false);
  assert.equal(acl.canSubscribe(sensor, 'dashboards/overview'), false);
  assert.equal(acl.canSubscribe(sensor, '#'), false, '"#" overlaps the denied dashboards/#');
  assert.equal(acl.canPublish(sensor, 'elsewhere'), true);
  assert.equal(new Acl([]).canPublish(sensor, 'x'), false);
  assert.equal(new Acl([{ allow: 'publish', topic: 'x' }]).canSubscribe(sensor, 'x'), false, 'an entry applies only to its actions');
});

test('Acl - a deny entry for publish refuses the topics its filter matches', () => {
  const acl = new Acl([
    { deny: 'publish', topic: 'devices/+/secrets/#' },
    { allow: 'publish', topic: 'devices/#' },
  ]);
  assert.equal(acl.canPublish(sensor, 'devices/d1/secrets/key'), false);
  assert.equal(acl.canPublish(sensor, 'devices/d1/secrets'), false);
  assert.equal(acl.canPublish(sensor, 'devices/d1/telemetry'), true);
});

test('Acl - {username} and {clientId} stand for the client’s own, also inside a level', () => {
  const acl = new Acl([
    { allow: 'publish', topic: 'devices/{username}/#' },
    { allow: 'publish', topic: 'clients/{clientId}/status' },
    { allow: 'publish', topic: 'logs/{username}-{clientId}' },
  ]);
  assert.equal(acl.canPublish(sensor, 'devices/sensor-1/telemetry'), true);
  assert.equal(acl.canPublish(sensor, 'devices/sensor-2/telemetry'), false);
  assert.equal(acl.canPublish(sensor, 'clients/sensor-1-client/status'), true);
  assert.equal(acl.canPublish(sensor, 'logs/sensor-1-sensor-1-client'), true);
  assert.equal(acl.canPublish(sensor, 'logs/sensor-1'), false);
});

test('Acl - an identity that is absent or holds / + # or U+0000 never matches a placeholder', () => {
  const acl = new Acl([{ allow: ['publish', 'subscribe'], topic: 'devices/{username}/#' }]);
  assert.equal(acl.canPublish(anonymous, 'devices//x'), false);
  for (const username of ['+', '#', 'a/b', 'a\u0000', '']) {
    const identity = { clientId: 'c', username };
    assert.equal(acl.canPublish(identity, `devices/${username}/x`), false, JSON.stringify(username));
    assert.equal(acl.canSubscribe(identity, 'devices/+/#'), false, JSON.stringify(username));
  }
});

test('Acl - a leading wildcard neither grants nor denies "$" topics [MQTT-4.7.2-1]', () => {
  const acl = new Acl([
    { deny: 'subscribe', topic: '#' },
    { allow: ['publish', 'subscribe'], topic: '$status/#' },
  ]);
  assert.equal(acl.canSubscribe(sensor, '$status/#'), true, 'no topic matches both "#" and "$status/#"');
  assert.equal(acl.canSubscribe(sensor, 'a/b'), false);
  assert.equal(new Acl([{ allow: 'subscribe', topic: '#' }]).canSubscribe(sensor, '$status/#'), false);
  assert.equal(new Acl([{ allow: 'publish', topic: '+/x' }]).canPublish(sensor, '$status/x'), false);
});

test('Acl - one Acl serves many identities: placeholders are expanded per decision', () => {
  const entries: AclEntrySettings[] = [{ allow: 'subscribe', topic: 'devices/{username}/commands/#' }];
  const acl = new Acl(entries);
  for (let i = 0; i < 3; i++) {
    const identity = { clientId: `c${i}`, username: `sensor-${i}` };
    assert.equal(acl.canSubscribe(identity, `devices/sensor-${i}/commands/#`), true);
    assert.equal(acl.canSubscribe(identity, `devices/sensor-${i + 1}/commands/#`), false);
  }
});
