import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashPassword } from '../../../src/auth/passwords.js';
import { loadConfigFile, loadConfigText, loadLocatedConfigFile } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/errors.js';

/** The mqtt settings besides the listeners, all at their defaults. */
const MQTT_LIMIT_DEFAULTS = {
  persistence: { type: 'memory' },
  maxOfflineMessages: 1000,
  maxPacketBytes: 16 * 1024 * 1024,
  maxConnections: 100_000,
  maxTopicBytes: 4096,
  maxTopicLevels: 32,
  maxSubscriptionsPerClient: 100,
  maxRetainedMessages: 100_000,
  maxRetainedBytes: 256 * 1024 * 1024,
  maxRetainedMessagesPerUser: 10_000,
  maxRetainedBytesPerUser: 32 * 1024 * 1024,
  maxPendingQos2BytesPerSession: 64 * 1024,
  connectTimeoutMs: 10_000,
  drainTimeoutMs: 60_000,
  sessionExpirySeconds: 86_400,
  maxSessionsPerUser: 10_000,
  maxConnectBytes: 64 * 1024,
  maxUnauthenticatedBytes: 64 * 1024 * 1024,
  maxBufferedBytes: 256 * 1024 * 1024,
  maxBufferedBytesPerAddress: 64 * 1024 * 1024,
  maxConnectionsPerAddress: 10_000,
  packetTimeoutMs: 60_000,
  maxClientIdLength: 128,
};

const FLOW_DEFAULTS = {
  maxPendingMessages: 10_000,
  maxPendingBytes: 64 * 1024 * 1024,
  maxInflightPerClient: 100,
  qos0Overflow: 'drop',
  refuseConnectionsAfterMs: 30_000,
};

const EXAMPLE_FILE = fileURLToPath(new URL('../../../config/bridge.yaml', import.meta.url));
const FILE = 'conf/test.yaml';

/** The configuration config/bridge.yaml gives with MQTT_PORT=1884 and nothing else set. */
const EXAMPLE_CONFIG = {
  mqtt: {
    listeners: [
      { type: 'tcp', host: '0.0.0.0', port: 1884 },
      { type: 'ws', host: '0.0.0.0', port: 8083, path: '/mqtt' },
    ],
    ...MQTT_LIMIT_DEFAULTS,
  },
  amqp: {
    protocol: '0-9-1',
    url: 'amqp://guest:guest@127.0.0.1:5672',
    connectionName: 'mqtt-amqp-bridge',
    idleTimeoutSeconds: 60,
    heartbeatSeconds: 30,
    exchanges: [
      { name: 'telemetry', type: 'topic', durable: true, autoDelete: false },
      { name: 'commands', type: 'topic', durable: true, autoDelete: false },
    ],
    maxUnconfirmed: 1024,
    publishTimeoutMs: 10000,
    reconnect: { initialDelayMs: 200, maxDelayMs: 30000, factor: 2, jitter: 0.2 },
    refusedRetryMs: 120_000,
  },
  uplink: [
    {
      name: 'telemetry',
      topic: 'devices/{deviceId}/telemetry/#',
      exchange: 'telemetry',
      routingKey: '{deviceId}.{#}',
      headers: { 'x-device-id': '{deviceId}' },
      properties: { contentType: 'application/json' },
    },
    { name: 'rest', topic: '#', exchange: 'amq.topic', routingKey: '{#}' },
  ],
  downlink: [
    {
      name: 'commands',
      exchange: 'commands',
      routingKey: '{deviceId}.#',
      topic: 'devices/{deviceId}/commands/{#}',
      qos: 1,
      retain: false,
      prefetch: 100,
    },
  ],
  flow: FLOW_DEFAULTS,
  limits: { publishesPerSecond: 0 },
  http: { enabled: true, host: '0.0.0.0', port: 9102 },
  log: { level: 'info' },
  shutdownTimeoutMs: 10000,
};

/** Loads `text` as FILE and asserts that it fails with exactly these `FILE:LINE:COL: message` lines. */
function assertProblems(text: string, expected: readonly string[], env: Record<string, string> = {}): ConfigError {
  let caught: unknown;
  try {
    loadConfigText(text, FILE, { env });
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.code, 'BRIDGE_ERR_CONFIG_INVALID');
  assert.deepEqual(
    caught.problems.map((problem) => `${problem.file}:${problem.line}:${problem.col}: ${problem.message}`),
    expected,
  );
  assert.equal(caught.message, expected.join('\n'));
  return caught;
}

// --- the example configuration ------------------------------------------------------------

test('loadConfigFile - config/bridge.yaml loads with MQTT_PORT=1884, numbers as numbers and defaults filled', () => {
  const config = loadConfigFile(EXAMPLE_FILE, { env: { MQTT_PORT: '1884' } });
  assert.deepEqual(config, EXAMPLE_CONFIG);
  assert.equal(config.mqtt.listeners[0]?.port, 1884);
  assert.equal(config.amqp.maxUnconfirmed, 1024);
});

test('loadConfigFile - config/bridge.yaml takes the port defaults when MQTT_PORT is unset or empty', () => {
  assert.equal(loadConfigFile(EXAMPLE_FILE, { env: {} }).mqtt.listeners[0]?.port, 1883);
  assert.equal(loadConfigFile(EXAMPLE_FILE, { env: { MQTT_PORT: '' } }).mqtt.listeners[0]?.port, 1883);
});

test('loadConfigFile - config/bridge.yaml reads its variables from the given environment', () => {
  const config = loadConfigFile(EXAMPLE_FILE, { env: { MQTT_PORT: '1884', MQTT_WS_PORT: '9001', AMQP_URL: 'amqps://u:p@rabbit:5671/vh' } });
  assert.deepEqual(config.mqtt.listeners, [
    { type: 'tcp', host: '0.0.0.0', port: 1884 },
    { type: 'ws', host: '0.0.0.0', port: 9001, path: '/mqtt' },
  ]);
  assert.equal(config.amqp.url, 'amqps://u:p@rabbit:5671/vh');
});

test('loadConfigFile - the result is deeply frozen', () => {
  const config = loadConfigFile(EXAMPLE_FILE, { env: { MQTT_PORT: '1884' } });
  const nested: unknown[] = [
    config,
    config.mqtt,
    config.mqtt.listeners,
    config.mqtt.listeners[0],
    config.mqtt.listeners[1],
    config.amqp,
    config.amqp.exchanges,
    config.amqp.exchanges[0],
    config.amqp.reconnect,
    config.uplink,
    config.uplink[0],
    config.uplink[0]?.headers,
    config.uplink[0]?.properties,
    config.uplink[1],
    config.downlink,
    config.downlink[0],
    config.log,
  ];
  nested.forEach((value, index) => {
    assert.equal(typeof value, 'object', `value ${index}`);
    assert.equal(Object.isFrozen(value), true, `value ${index}`);
  });
  assert.throws(() => {
    (config.amqp as { maxUnconfirmed: number }).maxUnconfirmed = 1;
  }, TypeError);
  assert.throws(() => {
    (config.uplink as unknown[]).push({});
  }, TypeError);
  assert.equal(config.amqp.maxUnconfirmed, 1024);
});

test('loadConfigFile - a missing file is a ConfigError BRIDGE_ERR_CONFIG_READ at 1:1', () => {
  const file = join(tmpdir(), `mqtt-amqp-bridge-missing-${randomUUID()}.yaml`);
  assert.throws(
    () => loadConfigFile(file, { env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'BRIDGE_ERR_CONFIG_READ');
      assert.deepEqual(error.problems, [{ file, line: 1, col: 1, path: '', message: 'cannot read configuration: file not found' }]);
      assert.equal(error.message, `${file}:1:1: cannot read configuration: file not found`);
      assert.equal((error.cause as NodeJS.ErrnoException).code, 'ENOENT');
      return true;
    },
  );
});

// --- values and defaults ------------------------------------------------------------------

const QUOTED_PORT = `mqtt:
  listeners:
    - { type: tcp, port: "1885" }
    - type: ws
      port: '8084'
`;

test('loadConfigText - a port given as quoted digits becomes a number', () => {
  const config = loadConfigText(QUOTED_PORT, FILE, { env: {} });
  assert.deepEqual(config.mqtt.listeners, [
    { type: 'tcp', host: '0.0.0.0', port: 1885 },
    { type: 'ws', host: '0.0.0.0', port: 8084, path: '/mqtt' },
  ]);
  assert.equal(typeof config.mqtt.listeners[0]?.port, 'number');
});

test('loadConfigText - an empty file gives every default', () => {
  const config = loadConfigText('', FILE, { env: {} });
  assert.deepEqual(config, {
    mqtt: { listeners: [{ type: 'tcp', host: '0.0.0.0', port: 1883 }], ...MQTT_LIMIT_DEFAULTS },
    amqp: {
      protocol: '0-9-1',
      url: 'amqp://guest:guest@127.0.0.1:5672',
      connectionName: 'mqtt-amqp-bridge',
      idleTimeoutSeconds: 60,
      heartbeatSeconds: 30,
      exchanges: [],
      maxUnconfirmed: 1024,
      publishTimeoutMs: 10000,
      reconnect: { initialDelayMs: 200, maxDelayMs: 30000, factor: 2, jitter: 0.2 },
      refusedRetryMs: 120_000,
    },
    uplink: [],
    downlink: [],
    flow: FLOW_DEFAULTS,
    limits: { publishesPerSecond: 0 },
    http: { enabled: true, host: '0.0.0.0', port: 9102 },
    log: { level: 'info' },
    shutdownTimeoutMs: 10000,
  });
  assert.equal(Object.isFrozen(config.mqtt.listeners[0]), true);
});

const ENV_VALUES = `amqp:
  url: amqp://\${HOST}:\${PORT:-5672}/$\${literal}
  maxUnconfirmed: \${MAX}
  reconnect: { factor: "\${FACTOR:-1.5}" }
`;

test('loadConfigText - variables are substituted in values and numbers read from them', () => {
  const config = loadConfigText(ENV_VALUES, FILE, { env: { HOST: 'rabbit', MAX: '64' } });
  assert.equal(config.amqp.url, 'amqp://rabbit:5672/${literal}');
  assert.equal(config.amqp.maxUnconfirmed, 64);
  assert.equal(config.amqp.reconnect.factor, 1.5);
});

// --- YAML syntax errors -------------------------------------------------------------------

const NESTED_MAPPING = `amqp:
  url: amqp: //rabbit
`;

test('loadConfigText - a YAML syntax error is reported as FILE:LINE:COL', () => {
  assertProblems(NESTED_MAPPING, ['conf/test.yaml:2:8: Nested mappings are not allowed in compact mappings']);
});

const TAB_INDENT = `amqp:
\turl: amqp://rabbit
`;

test('loadConfigText - a tab used as indentation is a syntax error at its position', () => {
  assertProblems(TAB_INDENT, ['conf/test.yaml:2:1: Tabs are not allowed as indentation']);
});

const DUPLICATE_KEY = `amqp:
  url: amqp://a
  url: amqp://b
`;

test('loadConfigText - a duplicate key is an error at the second key', () => {
  assertProblems(DUPLICATE_KEY, ['conf/test.yaml:3:3: Map keys must be unique']);
});

const SYNTAX_AND_SCHEMA = `amqp:
  url: amqp: //rabbit
bogus: 1
`;

test('loadConfigText - with a syntax error only syntax errors are reported', () => {
  assertProblems(SYNTAX_AND_SCHEMA, ['conf/test.yaml:2:8: Nested mappings are not allowed in compact mappings']);
});

// --- schema errors ------------------------------------------------------------------------

const UNKNOWN_RULE_KEY = `uplink:
  - name: telemetry
    topic: devices/{deviceId}/telemetry/#
    exchange: telemetry
    routingkey: "{deviceId}.{#}"
`;

test('loadConfigText - an unknown key is an error at the key, with a "did you mean" hint', () => {
  const error = assertProblems(UNKNOWN_RULE_KEY, [
    'conf/test.yaml:5:5: unknown key "routingkey" in uplink[0] (did you mean "routingKey"?); allowed: name, topic, exchange, routingKey, address, subject, headers, properties',
  ]);
  assert.equal(error.problems[0]?.path, 'uplink[0].routingkey');
});

const UNKNOWN_TOP_KEY = `mqtt: {}
shutdownTimeoutMs: 5
bogus: 1
`;

test('loadConfigText - an unknown top-level key far from any allowed one has no hint', () => {
  assertProblems(UNKNOWN_TOP_KEY, ['conf/test.yaml:3:1: unknown key "bogus"; allowed: mqtt, amqp, uplink, downlink, auth, acl, flow, limits, http, log, shutdownTimeoutMs']);
});

const UNKNOWN_LISTENER_KEY = `mqtt:
  listeners:
    - { type: tcp, prot: 1883 }
`;

test('loadConfigText - an unknown key in a listener lists that listener type\'s keys', () => {
  assertProblems(UNKNOWN_LISTENER_KEY, [
    'conf/test.yaml:3:20: unknown key "prot" in mqtt.listeners[0] (did you mean "port"?); allowed: type, host, port',
  ]);
});

const WRONG_LISTENER_TYPE = `mqtt:
  listeners:
    - { type: udp, port: 1883 }
`;

test('loadConfigText - a wrong listener type is an error at the type value', () => {
  assertProblems(WRONG_LISTENER_TYPE, ['conf/test.yaml:3:15: mqtt.listeners[0].type: must be one of "tcp", "ws", "tls", "wss"']);
});

const PORT_TOO_BIG = `mqtt:
  listeners:
    - type: tcp
      port: 70000
`;

test('loadConfigText - an out-of-range port is an error at the value', () => {
  assertProblems(PORT_TOO_BIG, ['conf/test.yaml:4:13: mqtt.listeners[0].port: must be at most 65535']);
});

test('loadConfigText - an amqp.url the URL parser refuses is an error that does not quote the URL (and its password)', () => {
  const error = assertProblems('amqp:\n  url: "amqp://user:s3cret@rabbit:99999"\n', [
    'conf/test.yaml:2:8: amqp.url: is not a valid URL (is the port a number up to 65535? are `/`, `?` and `#` in the password percent-encoded?)',
  ]);
  assert.ok(!JSON.stringify(error.problems).includes('s3cret'));
  assertProblems('amqp:\n  url: "amqp://user:pa/ss@rabbit"\n', [
    'conf/test.yaml:2:8: amqp.url: is not a valid URL (is the port a number up to 65535? are `/`, `?` and `#` in the password percent-encoded?)',
  ]);
});

const DUPLICATE_RULE_NAME = `uplink:
  - name: telemetry
    topic: a/#
    exchange: telemetry
  - name: telemetry
    topic: b/#
    exchange: telemetry
`;

test('loadConfigText - a duplicate rule name is an error at the second name', () => {
  const error = assertProblems(DUPLICATE_RULE_NAME, ['conf/test.yaml:5:11: uplink[1].name: rule name "telemetry" is used twice']);
  assert.equal(error.problems[0]?.path, 'uplink[1].name');
});

const DUPLICATE_DOWNLINK_NAME = `downlink:
  - { name: cmd, exchange: commands, routingKey: "#", topic: t }
  - { name: cmd, queue: q, topic: t }
`;

test('loadConfigText - a duplicate downlink rule name is an error at the second name', () => {
  assertProblems(DUPLICATE_DOWNLINK_NAME, ['conf/test.yaml:3:13: downlink[1].name: rule name "cmd" is used twice']);
});

const MISSING_EXCHANGE = `uplink:
  - name: a
    topic: t
`;

test('loadConfigText - a missing required key is an error at the object that lacks it', () => {
  assertProblems(MISSING_EXCHANGE, ['conf/test.yaml:2:5: uplink[0].exchange: is required']);
});

const DOWNLINK_NEITHER = `downlink:
  - name: c
    topic: t
`;

test('loadConfigText - a downlink rule with neither exchange nor queue is an error at the rule', () => {
  assertProblems(DOWNLINK_NEITHER, [
    'conf/test.yaml:2:5: downlink[0]: a downlink rule names either `exchange` (with `routingKey`) or `queue`, not both and not neither',
  ]);
});

// --- rule (pattern and template) errors -------------------------------------------------

const BAD_TEMPLATE = `uplink:
  - name: telemetry
    topic: devices/{id}/telemetry/#
    exchange: telemetry
    routingKey: "{deviceId}.{#}"
`;

test('loadConfigText - a template naming a capture the pattern lacks is an error at the routingKey value', () => {
  const error = assertProblems(BAD_TEMPLATE, [
    'conf/test.yaml:5:17: uplink[0] (telemetry): routingKey "{deviceId}.{#}": {deviceId} is not available here (available: {id}, {#}, {clientId}, {username}, {topic}, {qos})',
  ]);
  assert.equal(error.problems[0]?.path, 'uplink[0].routingKey');
});

const BAD_TEMPLATE_CRLF = BAD_TEMPLATE.replace(/\n/g, '\r\n');

test('loadConfigText - positions are the same with CRLF line endings', () => {
  assertProblems(BAD_TEMPLATE_CRLF, [
    'conf/test.yaml:5:17: uplink[0] (telemetry): routingKey "{deviceId}.{#}": {deviceId} is not available here (available: {id}, {#}, {clientId}, {username}, {topic}, {qos})',
  ]);
});

const BAD_HEADER_AND_KEY = `uplink:
  - name: t
    topic: devices/{deviceId}
    exchange: telemetry
    routingKey: x.{device}
    headers:
      x-device: "{dev}"
`;

test('loadConfigText - every problem of one rule is reported, each at its own value', () => {
  assertProblems(BAD_HEADER_AND_KEY, [
    'conf/test.yaml:5:17: uplink[0] (t): routingKey "x.{device}": {device} is not available here (available: {deviceId}, {clientId}, {username}, {topic}, {qos})',
    'conf/test.yaml:7:17: uplink[0] (t): headers.x-device "{dev}": {dev} is not available here (available: {deviceId}, {clientId}, {username}, {topic}, {qos})',
  ]);
});

const BAD_PATTERN = `downlink:
  - name: commands
    exchange: commands
    routingKey: dev-{id}.#
    topic: devices/{id}/{#}
`;

test('loadConfigText - a bad downlink pattern is an error at the routingKey value', () => {
  assertProblems(BAD_PATTERN, [
    'conf/test.yaml:4:17: downlink[0] (commands): routingKey "dev-{id}.#": segment "dev-{id}" mixes "{" with other characters; wildcards and captures must be a whole segment',
  ]);
});

const BRIDGE_HEADER = `uplink:
  - name: t
    topic: "#"
    exchange: amq.topic
    headers: { x-mqtt-topic: other }
`;

test('loadConfigText - a rule setting an x-mqtt-* header is an error at that header value', () => {
  assertProblems(BRIDGE_HEADER, ['conf/test.yaml:5:30: uplink[0] (t): header "x-mqtt-topic": headers starting with "x-mqtt-" are set by the bridge and cannot be set by a rule']);
});

// --- environment variables ----------------------------------------------------------------

const MISSING_VAR_PLAIN = `amqp:
  url: \${AMQP_URL}
`;

test('loadConfigText - a missing variable without default is an error at its "${"', () => {
  assertProblems(MISSING_VAR_PLAIN, [
    'conf/test.yaml:2:8: environment variable AMQP_URL is not set and has no default (write ${AMQP_URL:-default} to give one)',
  ]);
});

const MISSING_VAR_QUOTED = `mqtt:
  listeners:
    - { type: tcp, port: "\${MQTT_PORT}" }
`;

test('loadConfigText - a missing variable in a quoted value is an error at its "${", and only that', () => {
  assertProblems(MISSING_VAR_QUOTED, [
    'conf/test.yaml:3:27: environment variable MQTT_PORT is not set and has no default (write ${MQTT_PORT:-default} to give one)',
  ]);
});

const MISSING_VAR_MIDDLE = `amqp:
  url: amqp://\${USER:-guest}@\${HOST}/vh
`;

test('loadConfigText - a missing variable in the middle of a value is an error at its own "${"', () => {
  assertProblems(MISSING_VAR_MIDDLE, [
    'conf/test.yaml:2:30: environment variable HOST is not set and has no default (write ${HOST:-default} to give one)',
  ]);
});

const MALFORMED_VAR = `amqp:
  url: "amqp://\${1HOST}/vh"
`;

test('loadConfigText - a malformed reference is an error at its "${"', () => {
  assertProblems(MALFORMED_VAR, ['conf/test.yaml:2:16: "${1HOST}" is not a variable reference: write ${NAME} or ${NAME:-default}']);
});

const SAME_VAR_TWICE = `amqp:
  url: amqp://\${H}:\${H}/vh
`;

test('loadConfigText - the same missing variable twice in one value is reported at each "${"', () => {
  assertProblems(SAME_VAR_TWICE, [
    'conf/test.yaml:2:15: environment variable H is not set and has no default (write ${H:-default} to give one)',
    'conf/test.yaml:2:20: environment variable H is not set and has no default (write ${H:-default} to give one)',
  ]);
});

const VAR_AFTER_ESCAPE = `amqp:
  url: amqp://$\${H}\${H}/vh
`;

test('loadConfigText - a missing variable after a "$${" escape of the same text is reported at its own "${"', () => {
  // Columns: "  url: " is 1-7, "amqp://" 8-14, "$${H}" 15-19, so the missing "${H}" starts at 20.
  assertProblems(VAR_AFTER_ESCAPE, [
    'conf/test.yaml:2:20: environment variable H is not set and has no default (write ${H:-default} to give one)',
  ]);
});

// --- several problems ---------------------------------------------------------------------

const SEVERAL = `uplink:
  - name: telemetry
    topic: devices/{id}/telemetry/#
    exchange: telemetry
    routingKey: "{deviceId}.{#}"
  - name: telemetry
    topic: "#"
    exchange: amq.topic
mqtt:
  listeners:
    - { prot: 1, type: tcp, port: "\${MQTT_PORT}" }
    - { type: udp }
amqp:
  url: \${AMQP_URL}
  bogus: true
`;

test('loadConfigText - several problems in one file are reported together, sorted by line then column', () => {
  const error = assertProblems(SEVERAL, [
    'conf/test.yaml:5:17: uplink[0] (telemetry): routingKey "{deviceId}.{#}": {deviceId} is not available here (available: {id}, {#}, {clientId}, {username}, {topic}, {qos})',
    'conf/test.yaml:6:11: uplink[1].name: rule name "telemetry" is used twice',
    'conf/test.yaml:11:9: unknown key "prot" in mqtt.listeners[0] (did you mean "port"?); allowed: type, host, port',
    'conf/test.yaml:11:36: environment variable MQTT_PORT is not set and has no default (write ${MQTT_PORT:-default} to give one)',
    'conf/test.yaml:12:15: mqtt.listeners[1].type: must be one of "tcp", "ws", "tls", "wss"',
    'conf/test.yaml:14:8: environment variable AMQP_URL is not set and has no default (write ${AMQP_URL:-default} to give one)',
    'conf/test.yaml:15:3: unknown key "bogus" in amqp; allowed: protocol, url, connectionName, containerId, idleTimeoutSeconds, heartbeatSeconds, exchanges, maxUnconfirmed, publishTimeoutMs, reconnect, refusedRetryMs, tls',
  ]);
  assert.equal(error.problems.length, 7);
});

const BAD_HEADER_NAME = `uplink:
  - name: a
    topic: t
    exchange: e
    headers: { "bad name": x }
`;

test('loadConfigText - an invalid header name is reported with the schema\'s message at the header name', () => {
  // Columns: "    headers: " is 1-13, "{" 14, " " 15, so the quoted key starts at 16.
  assertProblems(BAD_HEADER_NAME, [
    'conf/test.yaml:5:16: uplink[0].headers: key "bad name": a header name is 1 to 128 printable ASCII characters',
  ]);
});

const UNKNOWN_NESTED_KEYS = `amqp:
  reconnect: { factr: 2 }
  exchanges:
    - { name: a, tpye: topic }
log:
  levle: debug
`;

test('loadConfigText - unknown keys in nested objects and array items get hints from their own schema', () => {
  assertProblems(UNKNOWN_NESTED_KEYS, [
    'conf/test.yaml:2:16: unknown key "factr" in amqp.reconnect (did you mean "factor"?); allowed: initialDelayMs, maxDelayMs, factor, jitter',
    'conf/test.yaml:4:18: unknown key "tpye" in amqp.exchanges[0] (did you mean "type"?); allowed: name, type, durable, autoDelete',
    'conf/test.yaml:6:3: unknown key "levle" in log (did you mean "level"?); allowed: level',
  ]);
});

// --- files named in the configuration -------------------------------------------------------

/** A folder holding `bridge.yaml` and the other files, as ops would lay them out. */
function configFolder(files: Record<string, string>): string {
  const folder = mkdtempSync(join(tmpdir(), 'bridge-load-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(folder, name, '..'), { recursive: true });
    writeFileSync(join(folder, name), text);
  }
  return folder;
}

test('loadConfigFile - the users of auth.usersFile join auth.users; it and mqtt.sessionFile are relative to the configuration\'s folder', async () => {
  const hash = await hashPassword('pw');
  const folder = configFolder({
    'bridge.yaml': `mqtt: { sessionFile: data/sessions.json }\nauth:\n  users: [{ username: inline, password: "${hash}" }]\n  usersFile: secrets/users.yaml\n`,
    'secrets/users.yaml': `users:\n  - { username: from-file, password: "${hash}" }\n`,
  });
  const config = loadConfigFile(join(folder, 'bridge.yaml'), { env: {} });
  assert.equal(config.mqtt.sessionFile, join(folder, 'data/sessions.json'));
  assert.equal(config.auth?.usersFile, join(folder, 'secrets/users.yaml'));
  assert.deepEqual(config.auth?.users, [
    { username: 'inline', password: hash },
    { username: 'from-file', password: hash },
  ]);
  assert.equal(Object.isFrozen(config.auth?.users), true);
});

test('loadConfigFile - an absolute mqtt.sessionFile is kept as it is', () => {
  const folder = configFolder({ 'bridge.yaml': 'mqtt: { sessionFile: /app/data/sessions.json }\n' });
  assert.equal(loadConfigFile(join(folder, 'bridge.yaml'), { env: {} }).mqtt.sessionFile, '/app/data/sessions.json');
});

test('loadConfigFile - a user defined twice is an error at the repeated username, in whichever file it is', async () => {
  const hash = await hashPassword('pw');
  const folder = configFolder({
    'bridge.yaml': [
      'auth:',
      '  usersFile: users.yaml',
      '  users:',
      `    - { username: a, password: "${hash}" }`,
      `    - { username: b, password: "${hash}" }`,
      `    - { username: c, password: "${hash}" }`,
      `    - { username: a, password: "${hash}" }`,
      '',
    ].join('\n'),
    'users.yaml': ['users:', `  - { username: d, password: "${hash}" }`, `  - { username: b, password: "${hash}" }`, `  - { username: d, password: "${hash}" }`, ''].join('\n'),
  });
  const file = join(folder, 'bridge.yaml');
  const users = join(folder, 'users.yaml');
  assert.throws(
    () => loadConfigFile(file, { env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'BRIDGE_ERR_CONFIG_INVALID');
      assert.deepEqual(error.message.split('\n'), [
        `${users}:3:17: users[1].username: user "b" is defined twice (first at ${file}:5:19)`,
        `${users}:4:17: users[2].username: user "d" is defined twice (first at ${users}:2:17)`,
        `${file}:7:19: auth.users[3].username: user "a" is defined twice (first at ${file}:4:19)`,
      ]);
      assert.deepEqual(
        error.problems.map((problem) => problem.path),
        ['users[1].username', 'users[2].username', 'auth.users[3].username'],
      );
      return true;
    },
  );
});

test('loadLocatedConfigFile - locates an entry by its path as FILE:LINE:COL; an entry left to its default at the nearest one written', () => {
  const folder = configFolder({
    'bridge.yaml': [
      'amqp:',
      '  exchanges:',
      '    - { name: a }',
      '    - name: b',
      '      durable: false',
      'uplink:',
      '  - { name: r, topic: "#", exchange: "${EXCHANGE:-b}" }',
      'downlink:',
      '  - { name: d, queue: q, topic: "t/{routingKey}" }',
      '',
    ].join('\n'),
  });
  const file = join(folder, 'bridge.yaml');
  const { config, locate } = loadLocatedConfigFile(file, { env: {} });
  assert.deepEqual(config, loadConfigFile(file, { env: {} }));
  assert.equal(locate('amqp.exchanges[1]'), `${file}:4:7`);
  assert.equal(locate('amqp.exchanges[1].durable'), `${file}:5:16`);
  assert.equal(locate('amqp.exchanges[0].durable'), `${file}:3:7`, 'not written: at its entry');
  assert.equal(locate('uplink[0].exchange'), `${file}:7:38`);
  assert.equal(locate('downlink[0].queue'), `${file}:9:23`);
  assert.equal(locate('downlink[0].queueName'), `${file}:9:5`);
});

// --- mqtt.persistence -------------------------------------------------------------------------

test('loadConfigText - Redis persistence: the URL, the key prefix, the sentinels, tls only with rediss://, and no sessionFile beside it', () => {
  const config = loadConfigText('mqtt:\n  persistence: { type: redis, url: "redis://u:p@r.example:6380/4", keyPrefix: "fleet-a:" }\n', FILE, { env: {} });
  assert.deepEqual(config.mqtt.persistence, { type: 'redis', url: 'redis://u:p@r.example:6380/4', keyPrefix: 'fleet-a:', instanceTimeoutSeconds: 15 });
  assert.deepEqual(loadConfigText('mqtt: { persistence: { type: redis } }\n', FILE, { env: {} }).mqtt.persistence, { type: 'redis', url: 'redis://127.0.0.1:6379/0', keyPrefix: 'mqtt-amqp-bridge:', instanceTimeoutSeconds: 15 });
  assertProblems(
    [
      'mqtt:',
      '  sessionFile: data/sessions.json',
      '  persistence:',
      '    type: redis',
      '    url: "redis://r.example/0"',
      '    tls: { ca: ca.pem }',
      '    sentinels: [{ host: s1 }]',
      '',
    ].join('\n'),
    [
      'conf/test.yaml:2:16: mqtt.sessionFile: sessionFile saves the memory state on a graceful stop; with `persistence.type: redis` the state is in Redis already: remove sessionFile',
      'conf/test.yaml:4:5: mqtt.persistence.sentinelName: `sentinels` and `sentinelName` go together',
      'conf/test.yaml:6:10: mqtt.persistence.tls: `tls` is for a rediss:// URL (TLS); this URL is redis:// (plain TCP)',
    ],
  );
  assertProblems('mqtt: { persistence: { type: redis, url: "redis://r.example/db1" } }\n', [
    'conf/test.yaml:1:42: mqtt.persistence.url: a Redis URL is redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), DB a number',
  ]);
});

test('loadConfigFile - Redis TLS files are relative to the configuration\'s folder, and one that cannot be read is a problem at its entry', () => {
  const folder = configFolder({
    'bridge.yaml': 'mqtt:\n  persistence:\n    type: redis\n    url: "rediss://r.example:6380/0"\n    tls: { ca: certs/redis-ca.pem, cert: certs/missing.pem, key: certs/client.key }\n',
    'certs/redis-ca.pem': 'ca',
    'certs/client.key': 'key',
  });
  const file = join(folder, 'bridge.yaml');
  assert.throws(
    () => loadConfigFile(file, { env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.message.split('\n'), [`${file}:5:42: mqtt.persistence.tls.cert: ${join(folder, 'certs/missing.pem')} does not exist`]);
      return true;
    },
  );
  writeFileSync(join(folder, 'certs/missing.pem'), 'cert');
  const persistence = loadConfigFile(file, { env: {} }).mqtt.persistence;
  assert.deepEqual(persistence.type === 'redis' && persistence.tls, { ca: join(folder, 'certs/redis-ca.pem'), cert: join(folder, 'certs/missing.pem'), key: join(folder, 'certs/client.key') });
});
