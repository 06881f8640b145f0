import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uplinkRuleSchema } from '../../../src/config/schema.js';
import { MappingError, RenderError } from '../../../src/errors.js';
import { assertRenderError } from '../../helpers/mapping-errors.js';
import { RuleError } from '../../../src/mapping/rule-error.js';
import {
  compileUplinkRule,
  UplinkResolver,
  type UplinkPublish,
  type UplinkRoute,
  type UplinkRuleConfig,
} from '../../../src/mapping/uplink.js';

/** The uplink rules of config/bridge.yaml (and docs/mapping.md), as written there. */
const EXAMPLE_RULES: readonly UplinkRuleConfig[] = [
  {
    name: 'telemetry',
    topic: 'devices/{deviceId}/telemetry/#',
    exchange: 'telemetry',
    routingKey: '{deviceId}.{#}',
    headers: { 'x-device-id': '{deviceId}' },
    properties: { contentType: 'application/json' },
  },
  {
    name: 'rest',
    topic: '#',
    exchange: 'amq.topic',
    routingKey: '{#}',
  },
];

const example = new UplinkResolver(EXAMPLE_RULES);

function publish(topic: string, extra: Partial<UplinkPublish> = {}): UplinkPublish {
  return { topic, clientId: 'dev-client', qos: 1, retain: false, ...extra };
}


// --- the example configuration -----------------------------------------------------------

test('UplinkResolver - example: devices/d1/telemetry/temp goes to telemetry with key d1.temp', () => {
  const expected: UplinkRoute = {
    rule: 'telemetry',
    exchange: 'telemetry',
    routingKey: 'd1.temp',
    headers: {
      'x-mqtt-topic': 'devices/d1/telemetry/temp',
      'x-mqtt-qos': 1,
      'x-mqtt-client-id': 'dev-client',
      'x-device-id': 'd1',
    },
    properties: { persistent: true, contentType: 'application/json' },
  };
  assert.deepEqual(example.resolve(publish('devices/d1/telemetry/temp')), expected);
});

test('UplinkResolver - example: devices/d1/telemetry (zero levels under #) gives key d1', () => {
  assert.deepEqual(example.resolve(publish('devices/d1/telemetry')), {
    rule: 'telemetry',
    exchange: 'telemetry',
    routingKey: 'd1',
    headers: {
      'x-mqtt-topic': 'devices/d1/telemetry',
      'x-mqtt-qos': 1,
      'x-mqtt-client-id': 'dev-client',
      'x-device-id': 'd1',
    },
    properties: { persistent: true, contentType: 'application/json' },
  });
});

test('UplinkResolver - example: levels with dots become words with "/" (devices/d.1/telemetry/room.1/t)', () => {
  assert.deepEqual(example.resolve(publish('devices/d.1/telemetry/room.1/t')), {
    rule: 'telemetry',
    exchange: 'telemetry',
    routingKey: 'd/1.room/1.t',
    headers: {
      'x-mqtt-topic': 'devices/d.1/telemetry/room.1/t',
      'x-mqtt-qos': 1,
      'x-mqtt-client-id': 'dev-client',
      'x-device-id': 'd.1',
    },
    properties: { persistent: true, contentType: 'application/json' },
  });
});

test('UplinkResolver - example: devices/d1/telemetry/ (one empty level) gives key "d1."', () => {
  assert.equal(example.resolve(publish('devices/d1/telemetry/'))?.routingKey, 'd1.');
});

test('UplinkResolver - example: a/b/c goes to amq.topic with key a.b.c (MQTT plugin compatible)', () => {
  assert.deepEqual(example.resolve(publish('a/b/c')), {
    rule: 'rest',
    exchange: 'amq.topic',
    routingKey: 'a.b.c',
    headers: { 'x-mqtt-topic': 'a/b/c', 'x-mqtt-qos': 1, 'x-mqtt-client-id': 'dev-client' },
    properties: { persistent: true },
  });
});

test('UplinkResolver - example: a//b gives key "a..b"', () => {
  assert.deepEqual(example.resolve(publish('a//b')), {
    rule: 'rest',
    exchange: 'amq.topic',
    routingKey: 'a..b',
    headers: { 'x-mqtt-topic': 'a//b', 'x-mqtt-qos': 1, 'x-mqtt-client-id': 'dev-client' },
    properties: { persistent: true },
  });
});

test('UplinkResolver - example: a topic that is almost telemetry falls through to rest', () => {
  assert.deepEqual(example.resolve(publish('devices/d1/status')), {
    rule: 'rest',
    exchange: 'amq.topic',
    routingKey: 'devices.d1.status',
    headers: { 'x-mqtt-topic': 'devices/d1/status', 'x-mqtt-qos': 1, 'x-mqtt-client-id': 'dev-client' },
    properties: { persistent: true },
  });
});

test('UplinkResolver - example: $SYS/x matches no rule (null)', () => {
  assert.equal(example.resolve(publish('$SYS/x')), null);
  assert.equal(example.match('$SYS/x'), null);
});

test('UplinkResolver - match returns the name of the rule that takes a topic', () => {
  assert.equal(example.match('devices/d1/telemetry/temp'), 'telemetry');
  assert.equal(example.match('devices/d1/telemetry'), 'telemetry');
  assert.equal(example.match('a/b'), 'rest');
});

test('UplinkResolver - retain adds x-mqtt-retain: true', () => {
  assert.deepEqual(example.resolve(publish('a/b', { retain: true }))?.headers, {
    'x-mqtt-topic': 'a/b',
    'x-mqtt-qos': 1,
    'x-mqtt-client-id': 'dev-client',
    'x-mqtt-retain': true,
  });
});

test('UplinkResolver - QoS 0 is not persistent and QoS 1 and 2 are', () => {
  const q0 = example.resolve(publish('a/b', { qos: 0 }));
  assert.deepEqual(q0?.properties, { persistent: false });
  assert.equal(q0?.headers['x-mqtt-qos'], 0);
  const q2 = example.resolve(publish('a/b', { qos: 2 }));
  assert.deepEqual(q2?.properties, { persistent: true });
  assert.equal(q2?.headers['x-mqtt-qos'], 2);
});

test('UplinkResolver - exchangesOfRules gives each rule\'s exchange in order: its name when literal, null when a placeholder renders it', () => {
  assert.deepEqual(example.exchangesOfRules(), [
    { rule: 'telemetry', exchange: 'telemetry' },
    { rule: 'rest', exchange: 'amq.topic' },
  ]);
  const resolver = new UplinkResolver([
    { name: 'a', topic: 'a/#', exchange: 'x', routingKey: '{#}' },
    { name: 'b', topic: 'b/{e}', exchange: 'per-{e}', routingKey: 'k' },
    { name: 'c', topic: 'c', exchange: 'x', routingKey: 'k' },
    { name: 'd', topic: 'd', exchange: '{{lit}}', routingKey: 'k' },
  ]);
  assert.deepEqual(resolver.exchangesOfRules(), [
    { rule: 'a', exchange: 'x' },
    { rule: 'b', exchange: null },
    { rule: 'c', exchange: 'x' },
    { rule: 'd', exchange: '{lit}' },
  ]);
});

test('UplinkResolver - no rules: every topic resolves to null', () => {
  const resolver = new UplinkResolver([]);
  assert.equal(resolver.resolve(publish('a')), null);
  assert.equal(resolver.match('a'), null);
  assert.deepEqual(resolver.exchangesOfRules(), []);
});

// --- templates ----------------------------------------------------------------------------

test('UplinkResolver - the built-ins {clientId}, {username}, {qos} and {topic}', () => {
  const resolver = new UplinkResolver([
    {
      name: 'all',
      topic: '#',
      exchange: 'ex',
      routingKey: '{clientId}.{username}.{qos}.{topic}',
      headers: { 'x-client': '{clientId}', 'x-user': '{username}', 'x-qos': '{qos}', 'x-topic': '{topic}' },
    },
  ]);
  assert.deepEqual(resolver.resolve(publish('a/b.c', { clientId: 'c1', username: 'u1', qos: 2 })), {
    rule: 'all',
    exchange: 'ex',
    routingKey: 'c1.u1.2.a.b/c',
    headers: {
      'x-mqtt-topic': 'a/b.c',
      'x-mqtt-qos': 2,
      'x-mqtt-client-id': 'c1',
      'x-client': 'c1',
      'x-user': 'u1',
      'x-qos': '2',
      'x-topic': 'a/b.c',
    },
    properties: { persistent: true },
  });
});

test('UplinkResolver - {username} renders "" for an anonymous client', () => {
  const resolver = new UplinkResolver([{ name: 'u', topic: '#', exchange: 'ex', routingKey: 'u.{username}', headers: { 'x-user': '{username}' } }]);
  const route = resolver.resolve(publish('a'));
  assert.equal(route?.routingKey, 'u.');
  assert.equal(route?.headers['x-user'], '');
});

test('UplinkResolver - without a routingKey, "{topic}" gives the plugin key', () => {
  const rule = uplinkRuleSchema.parse({ name: 'default', topic: '#', exchange: 'amq.topic' });
  assert.equal(rule.routingKey, undefined);
  const resolver = new UplinkResolver([rule]);
  assert.deepEqual(resolver.resolve(publish('a/b/c')), {
    rule: 'default',
    exchange: 'amq.topic',
    routingKey: 'a.b.c',
    headers: { 'x-mqtt-topic': 'a/b/c', 'x-mqtt-qos': 1, 'x-mqtt-client-id': 'dev-client' },
    properties: { persistent: true },
  });
  assert.equal(resolver.resolve(publish('x/room.1'))?.routingKey, 'x.room/1');
});

test('UplinkResolver - an exchange template renders per publish and is not re-encoded', () => {
  const resolver = new UplinkResolver([{ name: 'per-tenant', topic: 'tenants/{tenant}/#', exchange: 'tenant.{tenant}', routingKey: '{#}' }]);
  assert.deepEqual(resolver.resolve(publish('tenants/acme.eu/x/y')), {
    rule: 'per-tenant',
    exchange: 'tenant.acme.eu',
    routingKey: 'x.y',
    headers: { 'x-mqtt-topic': 'tenants/acme.eu/x/y', 'x-mqtt-qos': 1, 'x-mqtt-client-id': 'dev-client' },
    properties: { persistent: true },
  });
  assert.deepEqual(resolver.exchangesOfRules(), [{ rule: 'per-tenant', exchange: null }]);
});

test('UplinkResolver - header values are templates and are not re-encoded', () => {
  const resolver = new UplinkResolver([
    { name: 'h', topic: 'a/{x}/#', exchange: 'ex', routingKey: 'k', headers: { 'x-rest': '{#}', 'x-lit': 'fixed', 'x-mix': '{x}:{clientId}' } },
  ]);
  assert.deepEqual(resolver.resolve(publish('a/b.c/d/e.f', { clientId: 'c' }))?.headers, {
    'x-mqtt-topic': 'a/b.c/d/e.f',
    'x-mqtt-qos': 1,
    'x-mqtt-client-id': 'c',
    'x-rest': 'd/e.f',
    'x-lit': 'fixed',
    'x-mix': 'b.c:c',
  });
});

test('UplinkResolver - string properties are templates', () => {
  const resolver = new UplinkResolver([
    {
      name: 'props',
      topic: 'apps/{app}/{kind}',
      exchange: 'ex',
      routingKey: 'k',
      properties: {
        contentType: 'application/{kind}',
        contentEncoding: 'gzip',
        type: '{kind}',
        appId: '{app}',
        correlationId: '{clientId}',
        replyTo: 'replies.{clientId}',
      },
    },
  ]);
  assert.deepEqual(resolver.resolve(publish('apps/a.1/json', { clientId: 'c9' }))?.properties, {
    persistent: true,
    contentType: 'application/json',
    contentEncoding: 'gzip',
    type: 'json',
    appId: 'a.1',
    correlationId: 'c9',
    replyTo: 'replies.c9',
  });
});

test('UplinkResolver - priority is copied and expirationMs becomes the expiration string', () => {
  const resolver = new UplinkResolver([
    { name: 'p', topic: '#', exchange: 'ex', routingKey: 'k', properties: { priority: 5, expirationMs: 60000 } },
  ]);
  assert.deepEqual(resolver.resolve(publish('a', { qos: 0 }))?.properties, { persistent: false, priority: 5, expiration: '60000' });
  const zero = new UplinkResolver([{ name: 'z', topic: 'z', exchange: 'ex', routingKey: 'k', properties: { priority: 0, expirationMs: 0 } }]);
  assert.deepEqual(zero.resolve(publish('z'))?.properties, { persistent: true, priority: 0, expiration: '0' });
});

test('UplinkResolver - the first matching rule wins even when a later one is more specific', () => {
  const resolver = new UplinkResolver([
    { name: 'broad', topic: 'a/#', exchange: 'broad', routingKey: '{#}' },
    { name: 'narrow', topic: 'a/b', exchange: 'narrow', routingKey: 'k' },
  ]);
  assert.equal(resolver.resolve(publish('a/b'))?.rule, 'broad');
  assert.equal(resolver.resolve(publish('a/b'))?.exchange, 'broad');
});

test('UplinkResolver - rules with "+" and captures at several levels', () => {
  const resolver = new UplinkResolver([{ name: 's', topic: 'site/{site}/+/{sensor}', exchange: 'ex', routingKey: '{sensor}.{site}' }]);
  assert.equal(resolver.resolve(publish('site/s1/floor2/temp'))?.routingKey, 'temp.s1');
  assert.equal(resolver.resolve(publish('site/s1/temp')), null);
});

// --- limits -------------------------------------------------------------------------------

test('UplinkResolver - a routing key of exactly 255 bytes is accepted', () => {
  const route = example.resolve(publish(`devices/d1/telemetry/${'x'.repeat(252)}`));
  assert.equal(route?.routingKey, `d1.${'x'.repeat(252)}`);
  assert.equal(route?.routingKey.length, 255);
});

test('UplinkResolver - a routing key over 255 bytes is a RenderError', () => {
  assertRenderError(() => example.resolve(publish(`devices/d1/telemetry/${'x'.repeat(253)}`)), 'the rendered routing key is 256 bytes long; AMQP allows at most 255');
  assertRenderError(() => example.resolve(publish('y'.repeat(300))), 'the rendered routing key is 300 bytes long; AMQP allows at most 255');
});

test('UplinkResolver - the 255-byte limit counts UTF-8 bytes, not characters', () => {
  // 128 two-byte characters: 128 characters, 256 bytes.
  assertRenderError(() => example.resolve(publish('\u00e9'.repeat(128))), 'the rendered routing key is 256 bytes long; AMQP allows at most 255');
  assert.equal(example.resolve(publish(`${'\u00e9'.repeat(127)}x`))?.routingKey, `${'\u00e9'.repeat(127)}x`);
});

test('UplinkResolver - a rendered exchange over 255 bytes is a RenderError', () => {
  const resolver = new UplinkResolver([{ name: 'e', topic: '{e}', exchange: 'ex-{e}', routingKey: 'k' }]);
  assertRenderError(() => resolver.resolve(publish('e'.repeat(253))), 'the rendered exchange is 256 bytes long; AMQP allows at most 255');
});

test('UplinkResolver - a rendered string property over 255 bytes is a RenderError', () => {
  const resolver = new UplinkResolver([{ name: 'p', topic: '{t}', exchange: 'ex', routingKey: 'k', properties: { type: '{t}' } }]);
  assertRenderError(() => resolver.resolve(publish('t'.repeat(256))), 'the rendered type is 256 bytes long; AMQP allows at most 255');
});

// --- compile errors -----------------------------------------------------------------------

test('UplinkResolver - rule headers may not set the x-mqtt-* headers the bridge sets', () => {
  const bridgeHeaders = Object.keys(new UplinkResolver([{ name: 'r', topic: '#', exchange: 'ex', routingKey: 'k' }]).resolve(publish('a', { retain: true }))!.headers);
  assert.deepEqual(bridgeHeaders, ['x-mqtt-topic', 'x-mqtt-qos', 'x-mqtt-client-id', 'x-mqtt-retain']);
  for (const name of bridgeHeaders) {
    assert.throws(
      () => new UplinkResolver([{ name: 'r', topic: '#', exchange: 'ex', routingKey: 'k', headers: { [name]: 'v' } }]),
      (error: unknown) => {
        assert.ok(error instanceof RuleError);
        assert.equal(error.code, 'BRIDGE_ERR_TEMPLATE_INVALID');
        assert.equal(error.field, `headers.${name}`);
        assert.equal(error.message, `header "${name}": headers starting with "x-mqtt-" are set by the bridge and cannot be set by a rule`);
        return true;
      },
    );
  }
});

test('UplinkResolver - a bad rule is a RuleError carrying its index, field and code', () => {
  assert.throws(
    () =>
      new UplinkResolver([
        EXAMPLE_RULES[0]!,
        { name: 'bad', topic: 'a/{x}', exchange: 'ex', routingKey: '{y}' },
      ]),
    (error: unknown) => {
      assert.ok(error instanceof RuleError);
      assert.ok(error instanceof MappingError);
      assert.equal(error.ruleIndex, 1);
      assert.equal(error.code, 'BRIDGE_ERR_TEMPLATE_INVALID');
      assert.equal(error.field, 'routingKey');
      assert.equal(error.message, 'routingKey "{y}": {y} is not available here (available: {x}, {clientId}, {username}, {topic}, {qos})');
      return true;
    },
  );
});

test('UplinkResolver - a bad topic pattern is a RuleError with BRIDGE_ERR_PATTERN_INVALID', () => {
  assert.throws(
    () => new UplinkResolver([{ name: 'bad', topic: 'a/#/b', exchange: 'ex', routingKey: 'k' }]),
    (error: unknown) => {
      assert.ok(error instanceof RuleError);
      assert.equal(error.ruleIndex, 0);
      assert.equal(error.code, 'BRIDGE_ERR_PATTERN_INVALID');
      assert.equal(error.field, 'topic');
      assert.equal(error.message, 'topic "a/#/b": "#" is only allowed as the last segment');
      return true;
    },
  );
});

test('compileUplinkRule - collects every problem of a rule (bad routingKey AND bad header) and throws the first', () => {
  const problems: MappingError[] = [];
  assert.throws(
    () =>
      compileUplinkRule(
        {
          name: 'r',
          topic: 'devices/{deviceId}',
          exchange: '{tenant}',
          routingKey: '{deviceId}.{#}',
          headers: { 'x-ok': '{deviceId}', 'x-bad': '{nope', 'x-mqtt-qos': '1' },
          properties: { contentType: '{ct}', appId: 'app' },
        },
        problems,
      ),
    (error: unknown) => error === problems[0],
  );
  assert.deepEqual(
    problems.map((problem) => [problem.code, problem.field, problem.message]),
    [
      [
        'BRIDGE_ERR_TEMPLATE_INVALID',
        'exchange',
        'exchange "{tenant}": {tenant} is not available here (available: {deviceId}, {clientId}, {username}, {topic}, {qos})',
      ],
      [
        'BRIDGE_ERR_TEMPLATE_INVALID',
        'routingKey',
        'routingKey "{deviceId}.{#}": {#} is not available: the pattern "devices/{deviceId}" has no final "#" (available: {deviceId}, {clientId}, {username}, {topic}, {qos})',
      ],
      ['BRIDGE_ERR_TEMPLATE_INVALID', 'headers.x-bad', 'headers.x-bad "{nope": unclosed "{" at position 1 (write "{{" for a literal brace)'],
      ['BRIDGE_ERR_TEMPLATE_INVALID', 'headers.x-mqtt-qos', 'header "x-mqtt-qos": headers starting with "x-mqtt-" are set by the bridge and cannot be set by a rule'],
      [
        'BRIDGE_ERR_TEMPLATE_INVALID',
        'properties.contentType',
        'properties.contentType "{ct}": {ct} is not available here (available: {deviceId}, {clientId}, {username}, {topic}, {qos})',
      ],
    ],
  );
});

test('compileUplinkRule - only the routingKey and one header wrong: exactly those two problems', () => {
  const problems: MappingError[] = [];
  assert.throws(
    () => compileUplinkRule({ name: 'r', topic: 'a/{x}', exchange: 'ex', routingKey: '{y}', headers: { 'x-h': '{z}' } }, problems),
    (error: unknown) => error === problems[0],
  );
  assert.deepEqual(
    problems.map((problem) => problem.field),
    ['routingKey', 'headers.x-h'],
  );
});

test('compileUplinkRule - appends to the problems already in the array', () => {
  const problems: MappingError[] = [new MappingError('BRIDGE_ERR_PATTERN_INVALID', 'topic', 'earlier')];
  assert.throws(
    () => compileUplinkRule({ name: 'r', topic: 'a', exchange: 'ex', routingKey: '{y}' }, problems),
    (error: unknown) => error === problems[1],
  );
  assert.equal(problems.length, 2);
  assert.equal(problems[0]!.message, 'earlier');
  assert.equal(problems[1]!.field, 'routingKey');
});

test('compileUplinkRule - a bad topic pattern is the only problem (templates cannot be checked without it)', () => {
  const problems: MappingError[] = [];
  assert.throws(
    () => compileUplinkRule({ name: 'r', topic: 'a#', exchange: '{x}', routingKey: '{y}' }, problems),
    (error: unknown) => error === problems[0],
  );
  assert.deepEqual(
    problems.map((problem) => [problem.code, problem.field]),
    [['BRIDGE_ERR_PATTERN_INVALID', 'topic']],
  );
});

test('compileUplinkRule - a good rule compiles and adds no problem', () => {
  const problems: MappingError[] = [];
  const rule = compileUplinkRule(EXAMPLE_RULES[0]!, problems);
  assert.deepEqual(problems, []);
  assert.equal(rule.name, 'telemetry');
  assert.equal(rule.target.constant, 'telemetry');
  assert.equal(rule.key?.constant, null);
  assert.equal(rule.pattern.source, 'devices/{deviceId}/telemetry/#');
  assert.equal(rule.priority, undefined);
  assert.equal(rule.expiration, undefined);
});

test('UplinkResolver - the whole x-mqtt- header prefix is reserved, in any case', () => {
  for (const name of ['x-mqtt-foo', 'X-MQTT-Topic']) {
    assert.throws(
      () => new UplinkResolver([{ name: 'r', topic: '#', exchange: 'ex', routingKey: 'k', headers: { [name]: 'v' } }]),
      (error: unknown) => error instanceof RuleError && error.field === `headers.${name}`,
    );
  }
});

test('UplinkResolver - an exchange template that renders empty is a RenderError, not the default exchange', () => {
  const resolver = new UplinkResolver([{ name: 'r', topic: 'a/{x}/b', exchange: '{x}', routingKey: 'k' }]);
  assert.throws(
    () => resolver.resolve({ topic: 'a//b', clientId: 'c', qos: 1, retain: false }),
    (error: unknown) => error instanceof RenderError && error.message === 'the exchange template "{x}" rendered an empty exchange name',
  );
  const literal = new UplinkResolver([{ name: 'default', topic: 'q/{queue}', exchange: '', routingKey: '{queue}' }]);
  assert.equal(literal.resolve({ topic: 'q/jobs', clientId: 'c', qos: 1, retain: false })?.exchange, '');
});

// --- AMQP 1.0 rules: address and subject -------------------------------------------------------

test('UplinkResolver - an address rule gives the address and the subject, encoded as a routing key is', () => {
  const resolver = new UplinkResolver([{ name: 't', topic: 'devices/{id}/#', address: '/exchange/telemetry', subject: '{id}.{#}' }]);
  assert.deepEqual(resolver.resolve(publish('devices/d1/room.1/temp')), {
    rule: 't',
    address: '/exchange/telemetry',
    subject: 'd1.room/1.temp',
    headers: { 'x-mqtt-topic': 'devices/d1/room.1/temp', 'x-mqtt-qos': 1, 'x-mqtt-client-id': 'dev-client' },
    properties: { persistent: true },
  });
  assert.deepEqual(resolver.addressesOfRules(), [{ rule: 't', address: '/exchange/telemetry' }]);
  assert.deepEqual(resolver.exchangesOfRules(), []);
});

test('UplinkResolver - an address rule without subject sends none; a templated address renders per publish', () => {
  const resolver = new UplinkResolver([{ name: 'inbox', topic: '#', address: '{clientId}/inbox' }]);
  const route = resolver.resolve(publish('a/b', { clientId: 'c7' }));
  assert.equal(route?.address, 'c7/inbox');
  assert.equal(route?.subject, undefined);
  assert.deepEqual(resolver.addressesOfRules(), [{ rule: 'inbox', address: null }]);
});

test('UplinkResolver - an address template that renders nothing is a RenderError', () => {
  const resolver = new UplinkResolver([{ name: 'u', topic: '#', address: '{username}' }]);
  assert.throws(() => resolver.resolve(publish('a')), RenderError);
});

test('compileUplinkRule - a subject naming a capture the topic lacks is reported at `subject`', () => {
  const problems: MappingError[] = [];
  assert.throws(() => compileUplinkRule({ name: 'bad', topic: 'a/{x}', address: 'q', subject: '{y}' }, problems), MappingError);
  assert.equal(problems[0]?.field, 'subject');
});
