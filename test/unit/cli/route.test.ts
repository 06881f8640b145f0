import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { runCli } from '../../helpers/cli.js';

const config = 'config/bridge.yaml';

test('route - prints the rule and the AMQP message a publish becomes', async () => {
  const result = await runCli(['route', config, 'devices/dev-7/telemetry/room.1/temp', '--client-id', 'sensor-7', '--qos', '1']);
  assert.equal(result.code, 0);
  assert.equal(result.stderr, '');
  assert.deepEqual(JSON.parse(result.stdout), {
    direction: 'uplink',
    topic: 'devices/dev-7/telemetry/room.1/temp',
    rule: 'telemetry',
    exchange: 'telemetry',
    routingKey: 'dev-7.room/1.temp',
    headers: {
      'x-mqtt-topic': 'devices/dev-7/telemetry/room.1/temp',
      'x-mqtt-qos': 1,
      'x-mqtt-client-id': 'sensor-7',
      'x-device-id': 'dev-7',
    },
    properties: { contentType: 'application/json', deliveryMode: 2 },
  });
  assert.equal(result.stdout.split('\n').length, 2, 'one JSON object on one line');
});

test('route - the catch-all rule gives the MQTT plugin routing key; QoS 0 is transient', async () => {
  const result = await runCli(['route', config, 'a/b/c']);
  assert.equal(result.code, 0);
  assert.deepEqual(JSON.parse(result.stdout), {
    direction: 'uplink',
    topic: 'a/b/c',
    rule: 'rest',
    exchange: 'amq.topic',
    routingKey: 'a.b.c',
    headers: { 'x-mqtt-topic': 'a/b/c', 'x-mqtt-qos': 0, 'x-mqtt-client-id': 'route-cli' },
    properties: { deliveryMode: 1 },
  });
});

test('route - {username} is filled from --username', async () => {
  const result = await runCli(['route', 'test/fixtures/config/route-username.yaml', 'x/1', '--username', 'alice', '--client-id=c-9']);
  assert.equal(result.code, 0);
  assert.deepEqual((JSON.parse(result.stdout) as { routingKey: string }).routingKey, 'alice.c-9.1');
});

test('route - no matching rule exits 1 and says so', async () => {
  const result = await runCli(['route', config, '$SYS/broker/uptime']);
  assert.equal(result.code, 1);
  assert.deepEqual(JSON.parse(result.stdout), { direction: 'uplink', topic: '$SYS/broker/uptime', rule: null });
  assert.equal(result.stderr, 'no uplink rule matches topic "$SYS/broker/uptime"; a device publishing it is acknowledged but nothing goes to AMQP\n');
});

test('route - a topic filter instead of a topic is a usage error', async () => {
  const result = await runCli(['route', config, 'devices/+/telemetry']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^topic name "devices\/\+\/telemetry" contains a wildcard/);
});

test('route - a bad --qos is a usage error', async () => {
  const result = await runCli(['route', config, 'a/b', '--qos', '3']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^--qos must be 0, 1 or 2, not "3"/);
});

test('route - an invalid configuration is reported as validate does, exit 2', async () => {
  const result = await runCli(['route', 'test/fixtures/config/bad-template.yaml', 'devices/d/telemetry/x']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^test\/fixtures\/config\/bad-template\.yaml:7:17: uplink\[0\] \(telemetry\)/);
});

test('route --amqp - prints the downlink rule, its queue and the MQTT topic a message becomes', async () => {
  const result = await runCli(['route', config, '--amqp', 'commands', 'dev-1.set.room/1']);
  assert.equal(result.code, 0);
  assert.deepEqual(JSON.parse(result.stdout), {
    direction: 'downlink',
    exchange: 'commands',
    routingKey: 'dev-1.set.room/1',
    rule: 'commands',
    queue: 'bridge.downlink.commands',
    topic: 'devices/dev-1/commands/set/room.1',
    qos: 1,
    retain: false,
  });
});

test('route --amqp - {headers.NAME} is filled from --header; a missing header is a dead-letter, exit 1', async () => {
  const file = 'test/fixtures/config/route-downlink.yaml';
  const good = await runCli(['route', file, '--amqp', 'alerts', 'alert.high', '--header', 'x-site=plant-2', '--header', 'x-line=7']);
  assert.equal(good.code, 0);
  assert.deepEqual(JSON.parse(good.stdout), {
    direction: 'downlink',
    exchange: 'alerts',
    routingKey: 'alert.high',
    rule: 'alerts',
    queue: 'bridge.downlink.alerts',
    topic: 'sites/plant-2/7/alerts/high',
    qos: 2,
    retain: true,
  });
  const missing = await runCli(['route', file, '--amqp', 'alerts', 'alert.high', '--header', 'x-site=plant-2']);
  assert.equal(missing.code, 1);
  assert.equal((JSON.parse(missing.stdout) as { error: string }).error, 'header "x-line" is missing');
});

test('route --amqp - no rule bound to the exchange matches: exit 1', async () => {
  const result = await runCli(['route', config, '--amqp', 'telemetry', 'dev-1.temp']);
  assert.equal(result.code, 1);
  assert.deepEqual(JSON.parse(result.stdout), { direction: 'downlink', exchange: 'telemetry', routingKey: 'dev-1.temp', rule: null });
});

test('route --topics - one JSON line per topic of a file (blank and # lines skipped), for golden-file tests; exit 1 when one is not routed', async () => {
  const result = await runCli(['route', config, '--topics', 'test/fixtures/config/topics.txt', '--qos', '1']);
  assert.equal(result.code, 1);
  const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((line) => [line.topic, line.rule, line.routingKey ?? null]),
    [
      ['devices/d1/telemetry/temp', 'telemetry', 'd1.temp'],
      ['home/kitchen/light', 'rest', 'home.kitchen.light'],
      ['$SYS/broker/uptime', null, null],
      ['bad/+/topic', null, null],
    ],
  );
  assert.match(String(lines[3]!.error), /contains a wildcard/);
});

test('route --topics - reads standard input with "-"', async () => {
  const stdin = Readable.from([Buffer.from('a/b\nc\n')]);
  const result = await runCli(['route', config, '--topics', '-'], {}, stdin);
  assert.equal(result.code, 0);
  assert.deepEqual(result.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { routingKey: string }).routingKey), ['a.b', 'c']);
});

const amqp10 = 'test/fixtures/config/amqp10.yaml';

test('route - AMQP 1.0: prints the address, subject, application-properties and properties a publish becomes', async () => {
  const result = await runCli(['route', amqp10, 'devices/dev-7/telemetry/room.1/temp', '--client-id', 'sensor-7', '--qos', '1']);
  assert.equal(result.code, 0);
  assert.deepEqual(JSON.parse(result.stdout), {
    direction: 'uplink',
    topic: 'devices/dev-7/telemetry/room.1/temp',
    rule: 'telemetry',
    address: '/exchange/telemetry',
    subject: 'dev-7.room/1.temp',
    applicationProperties: {
      'x-mqtt-topic': 'devices/dev-7/telemetry/room.1/temp',
      'x-mqtt-qos': 1,
      'x-mqtt-client-id': 'sensor-7',
      'x-device-id': 'dev-7',
    },
    properties: { contentType: 'application/json', durable: true },
  });
});

test('route - AMQP 1.0: a rule without subject sends none; the address template renders per client; QoS 0 is not durable', async () => {
  const result = await runCli(['route', amqp10, 'a/b', '--client-id', 'c9']);
  assert.equal(result.code, 0);
  const printed = JSON.parse(result.stdout) as Record<string, unknown>;
  assert.equal(printed.address, 'c9.inbox');
  assert.equal(printed.subject, null);
  assert.deepEqual(printed.properties, { durable: false });
});

test('route --amqp - AMQP 1.0: the subject captures feed the topic; the address names the rule', async () => {
  const result = await runCli(['route', amqp10, '--amqp', '/amq/queue/commands', 'dev-3.reboot.now']);
  assert.equal(result.code, 0);
  assert.deepEqual(JSON.parse(result.stdout), {
    direction: 'downlink',
    address: '/amq/queue/commands',
    subject: 'dev-3.reboot.now',
    rule: 'commands',
    topic: 'devices/dev-3/commands/reboot/now',
    qos: 1,
    retain: false,
  });
});

test('route --amqp - AMQP 1.0: a message without a subject matches only a rule without a subject pattern', async () => {
  const none = await runCli(['route', amqp10, '--amqp', '/amq/queue/commands']);
  assert.equal(none.code, 1);
  assert.deepEqual(JSON.parse(none.stdout), { direction: 'downlink', address: '/amq/queue/commands', subject: null, rule: null });
  assert.match(none.stderr, /no downlink rule receiving from address "\/amq\/queue\/commands" matches a message without a subject/);
  const broadcast = await runCli(['route', amqp10, '--amqp', 'broadcast']);
  assert.equal(broadcast.code, 0);
  assert.equal((JSON.parse(broadcast.stdout) as { topic: string }).topic, 'all/broadcast');
});

test('route --amqp - AMQP 0-9-1 still needs both the exchange and the routing key', async () => {
  const result = await runCli(['route', config, '--amqp', 'commands']);
  assert.equal(result.code, 2);
});
