import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeCertificates } from '../../helpers/certs.js';
import { runCli } from '../../helpers/cli.js';

const fixture = (name: string) => `test/fixtures/config/${name}.yaml`;

test('validate - the example configuration is ok', async () => {
  assert.deepEqual(await runCli(['validate', 'config/bridge.yaml'], { MQTT_PORT: '1884' }), { code: 0, stdout: 'ok\n', stderr: '' });
});

test('validate - the example configuration needs no variable at all (every one has a default)', async () => {
  assert.deepEqual(await runCli(['validate', 'config/bridge.yaml'], {}), { code: 0, stdout: 'ok\n', stderr: '' });
});

test('validate - a YAML syntax error is reported at its line and column', async () => {
  const file = fixture('syntax-error');
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout: `${file}:4:1: Flow map in block collection must be sufficiently indented and end with a }\n`,
    stderr: '',
  });
});

test('validate - an unknown key is an error at the key, with a suggestion', async () => {
  const file = fixture('unknown-key');
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout: `${file}:10:5: unknown key "routingkey" in uplink[0] (did you mean "routingKey"?); allowed: name, topic, exchange, routingKey, address, subject, headers, properties\n`,
    stderr: '',
  });
});

test('validate - a template naming a capture its pattern lacks is an error at the template', async () => {
  const file = fixture('bad-template');
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout:
      `${file}:7:17: uplink[0] (telemetry): routingKey "{device}.{#}": {device} is not available here (available: {deviceId}, {#}, {clientId}, {username}, {topic}, {qos})\n` +
      `${file}:11:17: uplink[1] (status): routingKey "status.{#}": {#} is not available: the pattern "devices/+/status" has no final "#" (available: {clientId}, {username}, {topic}, {qos})\n`,
    stderr: '',
  });
});

test('validate - a variable without default that is not set is an error at its ${', async () => {
  const file = fixture('missing-env');
  assert.deepEqual(await runCli(['validate', file], {}), {
    code: 1,
    stdout: `${file}:5:8: environment variable BRIDGE_TEST_UNSET_AMQP_URL is not set and has no default (write \${BRIDGE_TEST_UNSET_AMQP_URL:-default} to give one)\n`,
    stderr: '',
  });
  assert.deepEqual(await runCli(['validate', file], { BRIDGE_TEST_UNSET_AMQP_URL: 'amqp://rabbit:5672' }), { code: 0, stdout: 'ok\n', stderr: '' });
});

test('validate - every problem of a file is reported at once, in file order', async () => {
  const file = fixture('several-problems');
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout: [
      `${file}:3:15: mqtt.listeners[0].type: must be one of "tcp", "ws", "tls", "wss"`,
      `${file}:4:26: mqtt.listeners[1].port: must be at most 65535`,
      `${file}:6:19: amqp.maxUnconfirmed: expected number, received string`,
      `${file}:9:13: uplink[1].name: rule name "a" is used twice`,
      `${file}:9:23: uplink[1] (a): topic "b/#/c": "#" is only allowed as the last segment`,
      '',
    ].join('\n'),
    stderr: '',
  });
});

test('validate - a file that does not exist', async () => {
  assert.deepEqual(await runCli(['validate', 'no/such/file.yaml']), {
    code: 1,
    stdout: 'no/such/file.yaml:1:1: cannot read configuration: file not found\n',
    stderr: '',
  });
});

test('validate - without a file is a usage error (exit 2)', async () => {
  const result = await runCli(['validate']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^usage: mqtt-amqp-bridge validate FILE \[--strict\] \[--amqp URL\]\n/);
});

test('validate - the secure example (config/examples/secure.yaml) is valid once its certificates exist', async () => {
  // makeCertificates writes server.pem, server.key, client.pem, client.key and ca.pem: the names the example uses.
  const certs = makeCertificates('sensor-1');
  assert.deepEqual(await runCli(['validate', 'config/examples/secure.yaml'], { CERTS_DIR: certs.folder }), { code: 0, stdout: 'ok\n', stderr: '' });
  const missing = await runCli(['validate', 'config/examples/secure.yaml'], { CERTS_DIR: '/nonexistent' });
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /config\/examples\/secure\.yaml:7:\d+: mqtt\.listeners\[0\]\.cert: \/nonexistent\/server\.pem does not exist/);
});

test('validate - the linter warns of a shadowed rule, colliding routing keys and a downlink no ACL lets anyone receive; exit 0', async () => {
  const file = fixture('lint-warnings');
  assert.deepEqual(await runCli(['validate', file]), {
    code: 0,
    stdout: [
      `${file}:10:12: warning: uplink[1] (telemetry) never takes a publish: uplink[0] (everything) with topic "devices/#" comes first and matches every topic "devices/{deviceId}/telemetry" matches`,
      `${file}:16:17: warning: uplink[2] (per-site): routing key "status.{site}" leaves out level 3 (+) of "sites/{site}/+/status", so different topics get the same routing key`,
      `${file}:24:17: warning: uplink[4] (south) and uplink[3] (north) send different topics to exchange "events" with the same routing key "event.{id}": consumers cannot tell them apart`,
      `${file}:29:12: warning: downlink[0] (alerts): no ACL entry lets anyone subscribe to "sites/{site}/alerts/{#}", so its messages reach no device`,
      'ok, with 4 warnings',
      '',
    ].join('\n'),
    stderr: '',
  });
});

test('validate - a downlink whose every topic a deny entry for everyone refuses first is warned of; one a deny covers only in part, or only for some, is not', async () => {
  const file = fixture('lint-downlink-denied');
  // acl[1] denies alerts to ops only, acl[2] names {username}: each leaves the rule's topics to others; acl[0] covers only some of status's.
  assert.deepEqual(await runCli(['validate', file]), {
    code: 0,
    stdout: [
      `${file}:11:12: warning: downlink[0] (commands): acl[0] denies every topic of "devices/{deviceId}/commands/{#}" to everyone before an entry allows it, so its messages reach no device`,
      'ok, with 1 warning',
      '',
    ].join('\n'),
    stderr: '',
  });
});

test('validate --strict - warnings are errors (exit 1)', async () => {
  const result = await runCli(['validate', fixture('lint-warnings'), '--strict']);
  assert.equal(result.code, 1);
  assert.equal(result.stdout.split('\n').filter((line) => line.includes(': warning: ')).length, 4);
  assert.deepEqual(await runCli(['validate', 'config/bridge.yaml', '--strict']), { code: 0, stdout: 'ok\n', stderr: '' });
});

test('validate - an ACL entry on {clientId} without auth.clientIds is warned of at the entry; with a restriction it is not', async () => {
  const file = fixture('lint-client-id');
  const result = await runCli(['validate', file]);
  assert.equal(result.code, 0);
  assert.deepEqual(result.stdout.split('\n'), [
    `${file}:5:34: warning: acl[1]: "devices/{clientId}/commands/#" trusts the client id a client claims, and without auth.clientIds any user may claim any client id; restrict them (e.g. clientIds: ["{username}", "{username}-*"]) or write the entry on {username}`,
    'ok, with 1 warning',
    '',
  ]);
  const restricted = join(mkdtempSync(join(tmpdir(), 'bridge-lint-')), 'bridge.yaml');
  writeFileSync(restricted, readFileSync(file, 'utf8').replace('auth: { anonymous: true }', 'auth: { anonymous: true, clientIds: ["{username}-*"] }'));
  assert.deepEqual(await runCli(['validate', restricted]), { code: 0, stdout: 'ok\n', stderr: '' });
});

test('validate - Redis persistence: sessionFile beside it, a malformed URL and an unreadable TLS file, each at FILE:LINE:COL', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-validate-')), 'redis.yaml');
  writeFileSync(
    file,
    ['mqtt:', '  sessionFile: sessions.json', '  persistence:', '    type: redis', '    url: "rediss://:secret@redis.example:6380/x"', '    tls: { ca: /nonexistent/redis-ca.pem }', ''].join('\n'),
  );
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout: [
      `${file}:2:16: mqtt.sessionFile: sessionFile saves the memory state on a graceful stop; with \`persistence.type: redis\` the state is in Redis already: remove sessionFile`,
      `${file}:5:10: mqtt.persistence.url: a Redis URL is redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), DB a number`,
      '',
    ].join('\n'),
    stderr: '',
  });
  writeFileSync(file, ['mqtt:', '  persistence:', '    type: redis', '    url: "rediss://:secret@redis.example:6380/2"', '    tls: { ca: /nonexistent/redis-ca.pem }', ''].join('\n'));
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout: `${file}:5:16: mqtt.persistence.tls.ca: /nonexistent/redis-ca.pem does not exist\n`,
    stderr: '',
  });
});

test('validate - an AMQP 1.0 configuration with address and subject rules is ok', async () => {
  assert.deepEqual(await runCli(['validate', fixture('amqp10')]), { code: 0, stdout: 'ok\n', stderr: '' });
});

test('validate - AMQP 0-9-1 keys in 1.0 mode are errors at each key, and a missing address at the rule', async () => {
  const file = fixture('amqp10-wrong-keys');
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout: [
      `${file}:4:5: amqp.exchanges: AMQP 1.0 declares nothing: \`amqp.exchanges\` is for amqp.protocol "0-9-1"`,
      `${file}:6:5: uplink[0].address: is required (amqp.protocol is "1.0")`,
      `${file}:8:15: uplink[0].exchange: \`exchange\` is an AMQP 0-9-1 key but amqp.protocol is "1.0": an uplink rule names \`address\` (and \`subject\`)`,
      `${file}:9:17: uplink[0].routingKey: \`routingKey\` is an AMQP 0-9-1 key but amqp.protocol is "1.0": an uplink rule names \`address\` (and \`subject\`)`,
      `${file}:13:25: uplink[1].properties.type: AMQP 1.0 messages have no \`type\` property (amqp.protocol is "1.0"); send it as a header instead`,
      `${file}:15:5: downlink[0].address: is required (amqp.protocol is "1.0")`,
      `${file}:16:12: downlink[0].queue: \`queue\` is an AMQP 0-9-1 key but amqp.protocol is "1.0": a downlink rule names \`address\` (and \`subject\`)`,
      '',
    ].join('\n'),
    stderr: '',
  });
});

test('validate - address and subject in 0-9-1 mode are errors at the key', async () => {
  const file = fixture('amqp091-address');
  assert.deepEqual(await runCli(['validate', file]), {
    code: 1,
    stdout: [
      `${file}:5:14: uplink[0].address: \`address\` is an AMQP 1.0 key but amqp.protocol is "0-9-1": an uplink rule names \`exchange\` and \`routingKey\``,
      `${file}:10:14: downlink[0].subject: \`subject\` is an AMQP 1.0 key but amqp.protocol is "0-9-1": a downlink rule names \`exchange\` and \`routingKey\`, or \`queue\``,
      '',
    ].join('\n'),
    stderr: '',
  });
});

test('validate - the AMQP 1.0 example (config/examples/amqp10.yaml) is valid', async () => {
  assert.deepEqual(await runCli(['validate', 'config/examples/amqp10.yaml']), { code: 0, stdout: 'ok\n', stderr: '' });
});

test('validate --amqp - asks AMQP 0-9-1 RabbitMQ only: with an AMQP 1.0 configuration it is a usage error', async () => {
  const result = await runCli(['validate', fixture('amqp10'), '--amqp', 'amqp://guest:guest@127.0.0.1:5672']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--amqp asks an AMQP 0-9-1 RabbitMQ what it would refuse; this configuration speaks AMQP 1\.0/);
});
