import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Acl, type AclEntrySettings, type AclIdentity } from '../../../src/auth/acl.js';

const ops = { clientId: 'ops-console', username: 'ops' };
const admin = { clientId: 'admin-console', username: 'admin' };
const sensor = { clientId: 'sensor-1-client', username: 'sensor-1' };
const anonymous = { clientId: 'anon', username: undefined };

/**
 * One row: who asks, for what, and the answer. `subscribe` asks with a filter (a SUBSCRIBE) or a
 * topic name (a delivery: the bridge asks `canSubscribe` with the message's topic).
 */
type Row = readonly [identity: AclIdentity, action: 'publish' | 'subscribe', request: string, expected: boolean, why: string];

interface Scenario {
  readonly name: string;
  readonly entries: readonly AclEntrySettings[];
  readonly rows: readonly Row[];
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'a deny of one topic before an allow of everything (issue 11)',
    entries: [
      { deny: 'subscribe', topic: 'test/nosubscribe' },
      { allow: ['publish', 'subscribe'], topic: '#' },
    ],
    rows: [
      [anonymous, 'subscribe', '#', true, 'the deny only overlaps "#": the allow of "#" covers it'],
      [anonymous, 'subscribe', '+/+', true, 'overlaps the deny, covered by the allow'],
      [anonymous, 'subscribe', 'test/+', true, 'overlaps the deny'],
      [anonymous, 'subscribe', 'test/#', true, 'overlaps the deny'],
      [anonymous, 'subscribe', 'test/nosubscribe/#', true, '"a/#" matches "a" too, so it overlaps the deny "a"; the deny does not cover it'],
      [anonymous, 'subscribe', 'test/nosubscribe', false, 'the deny covers it (as a filter, and as a delivered topic)'],
      [anonymous, 'subscribe', 'test/other', true, 'a delivery on a topic the deny does not match'],
      [anonymous, 'publish', 'test/nosubscribe', true, 'the deny is for subscribe only'],
      [anonymous, 'subscribe', '$SYS/#', false, 'no entry covers a "$" filter: "#" does not [MQTT-4.7.2-1]'],
    ],
  },
  {
    name: 'a deny of a subtree before an allow of everything',
    entries: [
      { deny: 'subscribe', topic: 'devices/+/secrets/#' },
      { allow: 'subscribe', topic: '#' },
    ],
    rows: [
      [sensor, 'subscribe', '#', true, 'overlaps the deny'],
      [sensor, 'subscribe', '+/+', true, 'no topic of two levels is in the deny at all'],
      [sensor, 'subscribe', 'devices/#', true, 'overlaps the deny'],
      [sensor, 'subscribe', 'devices/d1/#', true, 'overlaps the deny'],
      [sensor, 'subscribe', 'devices/+/+/key', true, 'overlaps the deny'],
      [sensor, 'subscribe', 'devices/+/telemetry', true, 'no topic in common with the deny'],
      [sensor, 'subscribe', 'devices/+/secrets/#', false, 'the deny itself'],
      [sensor, 'subscribe', 'devices/d1/secrets/#', false, 'wholly inside the deny'],
      [sensor, 'subscribe', 'devices/d1/secrets/+', false, 'wholly inside the deny'],
      [sensor, 'subscribe', 'devices/d1/secrets', false, '"devices/+/secrets/#" matches "devices/d1/secrets" too'],
      [sensor, 'subscribe', 'devices/d1/secrets/key', false, 'a delivery on a denied topic'],
      [sensor, 'subscribe', 'devices/d1/telemetry', true, 'a delivery on an allowed topic'],
      [sensor, 'publish', 'devices/d1/secrets/key', false, 'no entry for publish: denied'],
    ],
  },
  {
    name: 'the first entry that covers the request decides; one that only overlaps it decides nothing',
    entries: [
      { allow: 'subscribe', topic: 'devices/d1/#' },
      { deny: 'subscribe', topic: 'devices/#' },
      { allow: 'subscribe', topic: '#' },
    ],
    rows: [
      [sensor, 'subscribe', 'devices/d1/secrets', true, 'the allow comes first and covers it'],
      [sensor, 'subscribe', 'devices/d1/#', true, 'the allow covers it'],
      [sensor, 'subscribe', 'devices/+/state', false, 'the allow only overlaps it; the deny covers it'],
      [sensor, 'subscribe', 'devices/#', false, 'the allow only overlaps it; the deny covers it'],
      [sensor, 'subscribe', 'devices/d2/state', false, 'a delivery: the deny is the first entry that matches'],
      [sensor, 'subscribe', '#', true, 'the allow and the deny only overlap it; the last allow covers it'],
      [sensor, 'subscribe', 'other/x', true, 'only the last entry matches'],
    ],
  },
  {
    name: 'an allow must cover the whole filter',
    entries: [{ allow: 'subscribe', topic: 'devices/{username}/commands/#' }],
    rows: [
      [sensor, 'subscribe', 'devices/sensor-1/commands/#', true, 'the entry itself'],
      [sensor, 'subscribe', 'devices/sensor-1/commands/reboot', true, 'inside it'],
      [sensor, 'subscribe', 'devices/sensor-1/commands', true, '"a/#" covers "a"'],
      [sensor, 'subscribe', 'devices/+/commands/#', false, 'broader than the allow, which only overlaps it'],
      [sensor, 'subscribe', 'devices/sensor-1/#', false, 'broader than the allow'],
      [sensor, 'subscribe', '#', false, 'broader than the allow'],
      [sensor, 'subscribe', 'devices/sensor-2/commands/#', false, 'another user\'s'],
      [sensor, 'subscribe', 'devices/sensor-2/commands/reboot', false, 'a delivery on another user\'s topic'],
    ],
  },
  {
    name: 'entries limited to users',
    entries: [
      { deny: 'subscribe', topic: 'devices/+/secrets/#', users: ['admin'] },
      { allow: ['publish', 'subscribe'], topic: 'dashboards/#', users: ['ops'] },
      { allow: 'subscribe', topic: '#', users: ['admin', 'ops'] },
    ],
    rows: [
      [admin, 'subscribe', 'devices/#', true, 'the deny only overlaps it'],
      [admin, 'subscribe', 'devices/d1/secrets/key', false, 'the deny covers it for admin'],
      [ops, 'subscribe', 'devices/d1/secrets/key', true, 'the deny is admin\'s only'],
      [ops, 'publish', 'dashboards/overview', true, 'ops may publish there'],
      [admin, 'publish', 'dashboards/overview', false, 'the publish entry is ops\' only'],
      [sensor, 'subscribe', 'devices/#', false, 'no entry for sensor-1'],
      [anonymous, 'subscribe', 'dashboards/x', false, 'an entry with users never applies to a client without a username'],
    ],
  },
  {
    name: 'placeholders in allow and deny entries',
    entries: [
      { deny: 'subscribe', topic: 'devices/{username}/private/#' },
      { allow: 'subscribe', topic: 'clients/{clientId}/#' },
      { allow: 'subscribe', topic: 'devices/#' },
    ],
    rows: [
      [sensor, 'subscribe', 'devices/sensor-1/private/x', false, 'the deny of its own private topics'],
      [sensor, 'subscribe', 'devices/sensor-1/#', true, 'overlaps its deny'],
      [sensor, 'subscribe', 'devices/+/private/#', true, 'overlaps its deny (and covers others\' private topics, which the deny does not name)'],
      [sensor, 'subscribe', 'devices/sensor-2/private/x', true, 'the deny names sensor-1\'s own only'],
      [ops, 'subscribe', 'devices/sensor-1/private/x', true, 'for ops the deny is devices/ops/private/#'],
      [anonymous, 'subscribe', 'devices/x/private/y', true, 'a client without a username is never matched by a placeholder entry, allow or deny'],
      [sensor, 'subscribe', 'clients/sensor-1-client/#', true, 'its own client id'],
      [sensor, 'subscribe', 'clients/+/#', false, 'broader than its own client id'],
      [sensor, 'subscribe', 'clients/other/x', false, 'a delivery on another client\'s topic'],
    ],
  },
  {
    name: '"$" topics: a leading wildcard neither covers nor overlaps them [MQTT-4.7.2-1]',
    entries: [
      { deny: 'subscribe', topic: '+/secrets' },
      { deny: 'subscribe', topic: '#', users: ['ops'] },
      { allow: ['publish', 'subscribe'], topic: '$status/#' },
      { allow: 'subscribe', topic: 'open/#' },
    ],
    rows: [
      [sensor, 'subscribe', '$status/#', true, 'the allow of $status/# covers it'],
      [sensor, 'subscribe', '$status/secrets', true, 'the deny "+/secrets" does not match a "$" topic'],
      [ops, 'subscribe', '$status/x', true, 'the deny "#" does not match a "$" topic'],
      [ops, 'subscribe', 'open/x', false, 'the deny "#" matches everything else'],
      [sensor, 'subscribe', '#', false, 'no entry covers "#": "$status/#" is not inside it, nor "#" inside "$status/#"'],
      [sensor, 'subscribe', 'open/secrets', false, 'the deny "+/secrets" covers it'],
      [sensor, 'publish', '$status/x', true, 'the allow covers it for publish too'],
    ],
  },
  {
    name: 'an allow of "#" or "+/..." grants no "$" topic',
    entries: [
      { allow: 'subscribe', topic: '#' },
      { allow: 'publish', topic: '+/x' },
    ],
    rows: [
      [sensor, 'subscribe', '$status/#', false, 'not covered by "#"'],
      [sensor, 'subscribe', '$status/x', false, 'a delivery on a "$" topic'],
      [sensor, 'publish', '$status/x', false, 'not matched by "+/x"'],
      [sensor, 'publish', 'a/x', true, 'matched by "+/x"'],
    ],
  },
  {
    name: 'a deny for publish refuses the topics its filter matches',
    entries: [
      { deny: 'publish', topic: 'devices/+/secrets/#' },
      { allow: 'publish', topic: 'devices/#' },
    ],
    rows: [
      [sensor, 'publish', 'devices/d1/secrets/key', false, 'matched by the deny'],
      [sensor, 'publish', 'devices/d1/secrets', false, '"a/#" matches "a"'],
      [sensor, 'publish', 'devices/d1/telemetry', true, 'matched by the allow only'],
      [sensor, 'subscribe', 'devices/d1/telemetry', false, 'an entry applies only to its actions'],
    ],
  },
  { name: 'an empty ACL denies everything', entries: [], rows: [[sensor, 'publish', 'x', false, 'nothing allows it'], [sensor, 'subscribe', 'x', false, 'nothing allows it']] },
];

for (const scenario of SCENARIOS) {
  test(`Acl - ${scenario.name}`, () => {
    const acl = new Acl(scenario.entries);
    const answers = scenario.rows.map(([identity, action, request]) => (action === 'publish' ? acl.canPublish(identity, request) : acl.canSubscribe(identity, request)));
    const wrong = scenario.rows.filter((row, index) => answers[index] !== row[3]).map(([identity, action, request, expected, why]) => `${identity.username ?? '(anonymous)'} ${action} ${request}: expected ${expected} (${why})`);
    assert.deepEqual(wrong, []);
  });
}

test('Acl - a topic name is the narrowest filter: for it, covering and matching give the same answer', () => {
  // The bridge asks canSubscribe with the topic of every message it delivers; a deny that
  // matches the topic refuses it, whichever filter brought the message.
  const acl = new Acl([
    { deny: 'subscribe', topic: 'devices/+/secrets/#' },
    { allow: 'subscribe', topic: 'devices/#' },
  ]);
  const publishAcl = new Acl([
    { deny: 'publish', topic: 'devices/+/secrets/#' },
    { allow: 'publish', topic: 'devices/#' },
  ]);
  for (const topic of ['devices', 'devices/d1', 'devices/d1/secrets', 'devices/d1/secrets/key', 'devices/d1/secrets/a/b', 'devices/d1/telemetry', 'other', '$devices/d1']) {
    assert.equal(acl.canSubscribe(sensor, topic), publishAcl.canPublish(sensor, topic), topic);
  }
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

test('Acl - one Acl serves many identities: placeholders are expanded per decision', () => {
  const entries: AclEntrySettings[] = [{ allow: 'subscribe', topic: 'devices/{username}/commands/#' }];
  const acl = new Acl(entries);
  for (let i = 0; i < 3; i++) {
    const identity = { clientId: `c${i}`, username: `sensor-${i}` };
    assert.equal(acl.canSubscribe(identity, `devices/sensor-${i}/commands/#`), true);
    assert.equal(acl.canSubscribe(identity, `devices/sensor-${i + 1}/commands/#`), false);
  }
});
