import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MappingError } from '../../../src/errors.js';
import { assertMappingError, assertRenderError } from '../../helpers/mapping-errors.js';
import {
  compileDownlinkRule,
  compileDownlinkRules,
  DownlinkRuleResolver,
  type DownlinkDelivery,
  type DownlinkRuleConfig,
} from '../../../src/mapping/downlink.js';
import { RuleError } from '../../../src/mapping/rule-error.js';

/** The downlink rule of config/bridge.yaml (and docs/mapping.md). */
const COMMANDS: DownlinkRuleConfig = {
  name: 'commands',
  exchange: 'commands',
  routingKey: '{deviceId}.#',
  topic: 'devices/{deviceId}/commands/{#}',
  qos: 1,
};

const commands = new DownlinkRuleResolver(compileDownlinkRule(COMMANDS));

function delivery(routingKey: string, extra: { exchange?: string; headers?: DownlinkDelivery['headers'] } = {}): DownlinkDelivery {
  return { exchange: 'commands', routingKey, ...extra };
}

function resolver(rule: Partial<DownlinkRuleConfig> & { topic: string }): DownlinkRuleResolver {
  return new DownlinkRuleResolver(compileDownlinkRule({ name: 'r', qos: 0, ...rule }));
}

function assertCompileError(rule: DownlinkRuleConfig, code: MappingError['code'], field: string, message: string): void {
  const problems: MappingError[] = [];
  const error = assertMappingError(() => compileDownlinkRule(rule, problems), code, field, message);
  assert.deepEqual(problems, [error]);
}

// --- compileDownlinkRule --------------------------------------------------------------------

test('compileDownlinkRule - example rule: binding key "*.#", qos 1, retain false', () => {
  const rule = compileDownlinkRule(COMMANDS);
  assert.equal(rule.name, 'commands');
  assert.equal(rule.bindingKey, '*.#');
  assert.equal(rule.qos, 1);
  assert.equal(rule.retain, false);
  assert.equal(rule.pattern.source, '{deviceId}.#');
  assert.equal(rule.pattern.separator, '.');
  assert.equal(rule.topic.source, 'devices/{deviceId}/commands/{#}');
  assert.equal(rule.topic.constant, null);
});

test('compileDownlinkRule - binding keys turn every {name} into "*" and keep literals', () => {
  assert.equal(compileDownlinkRule({ ...COMMANDS, routingKey: 'cmd.{site}.*.{deviceId}', topic: 's/{site}/{deviceId}' }).bindingKey, 'cmd.*.*.*');
  assert.equal(compileDownlinkRule({ ...COMMANDS, routingKey: 'all.commands', topic: 'broadcast' }).bindingKey, 'all.commands');
  assert.equal(compileDownlinkRule({ ...COMMANDS, routingKey: '#', topic: 'x/{#}' }).bindingKey, '#');
});

test('compileDownlinkRule - retain true is kept', () => {
  assert.equal(compileDownlinkRule({ ...COMMANDS, retain: true }).retain, true);
});

test('compileDownlinkRule - a queue rule has no binding key and its pattern matches everything', () => {
  const rule = compileDownlinkRule({ name: 'q', queue: 'device-commands', topic: 'x/{routingKey}', qos: 2 });
  assert.equal(rule.bindingKey, null);
  assert.equal(rule.pattern.source, '#');
  assert.deepEqual(rule.pattern.segments, [{ kind: 'multi' }]);
  assert.equal(rule.qos, 2);
});

test('compileDownlinkRule - a bad routingKey pattern is a MappingError BRIDGE_ERR_PATTERN_INVALID', () => {
  assertCompileError(
    { ...COMMANDS, routingKey: 'dev-{id}.#' },
    'BRIDGE_ERR_PATTERN_INVALID',
    'routingKey',
    'routingKey "dev-{id}.#": segment "dev-{id}" mixes "{" with other characters; wildcards and captures must be a whole segment',
  );
  assertCompileError(
    { ...COMMANDS, routingKey: '#.{deviceId}' },
    'BRIDGE_ERR_PATTERN_INVALID',
    'routingKey',
    'routingKey "#.{deviceId}": "#" is only allowed as the last segment',
  );
  assertCompileError(
    { ...COMMANDS, routingKey: '{exchange}.#' },
    'BRIDGE_ERR_PATTERN_INVALID',
    'routingKey',
    'routingKey "{exchange}.#": {exchange} is a built-in placeholder and cannot be captured',
  );
});

test('compileDownlinkRule - a topic naming a capture the pattern lacks is a MappingError BRIDGE_ERR_TEMPLATE_INVALID', () => {
  assertCompileError(
    { ...COMMANDS, topic: 'devices/{id}/commands' },
    'BRIDGE_ERR_TEMPLATE_INVALID',
    'topic',
    'topic "devices/{id}/commands": {id} is not available here (available: {deviceId}, {#}, {routingKey}, {exchange}, {headers.NAME})',
  );
});

test('compileDownlinkRule - {#} in the topic needs a "#" in the routingKey', () => {
  assertCompileError(
    { ...COMMANDS, routingKey: '{deviceId}.reboot' },
    'BRIDGE_ERR_TEMPLATE_INVALID',
    'topic',
    'topic "devices/{deviceId}/commands/{#}": {#} is not available: the pattern "{deviceId}.reboot" has no final "#" (available: {deviceId}, {routingKey}, {exchange}, {headers.NAME})',
  );
});

test('compileDownlinkRule - a constant topic with a wildcard is a compile error', () => {
  assertCompileError(
    { ...COMMANDS, topic: 'devices/+/commands' },
    'BRIDGE_ERR_TEMPLATE_INVALID',
    'topic',
    'topic "devices/+/commands": topic name "devices/+/commands" contains a wildcard; wildcards are only allowed in filters [MQTT-4.7.1-1]',
  );
  assertCompileError(
    { ...COMMANDS, topic: 'all/#' },
    'BRIDGE_ERR_TEMPLATE_INVALID',
    'topic',
    'topic "all/#": topic name "all/#" contains a wildcard; wildcards are only allowed in filters [MQTT-4.7.1-1]',
  );
});

test('compileDownlinkRule - a constant empty topic is a compile error', () => {
  assertCompileError(
    { ...COMMANDS, topic: '' },
    'BRIDGE_ERR_TEMPLATE_INVALID',
    'topic',
    'topic "": a topic name must be at least one character long [MQTT-4.7.3-1]',
  );
});

test('compileDownlinkRules - a bad rule is a RuleError carrying its index', () => {
  assert.throws(
    () => compileDownlinkRules([COMMANDS, { ...COMMANDS, name: 'bad', routingKey: 'a#' }]),
    (error: unknown) => {
      assert.ok(error instanceof RuleError);
      assert.equal(error.ruleIndex, 1);
      assert.equal(error.code, 'BRIDGE_ERR_PATTERN_INVALID');
      assert.equal(error.field, 'routingKey');
      assert.equal(error.message, 'routingKey "a#": segment "a#" mixes "#" with other characters; wildcards and captures must be a whole segment');
      return true;
    },
  );
});

test('compileDownlinkRules - compiles each rule to a resolver, in order', () => {
  const resolvers = compileDownlinkRules([COMMANDS, { name: 'q', queue: 'qq', topic: 'q/{routingKey}', qos: 0 }]);
  assert.deepEqual(
    resolvers.map((r) => [r.rule.name, r.rule.bindingKey]),
    [
      ['commands', '*.#'],
      ['q', null],
    ],
  );
});

// --- DownlinkRuleResolver: the example rule -------------------------------------------------

test('DownlinkRuleResolver - example: d1.reboot -> devices/d1/commands/reboot', () => {
  assert.deepEqual(commands.resolve(delivery('d1.reboot')), { rule: 'commands', topic: 'devices/d1/commands/reboot', qos: 1, retain: false });
});

test('DownlinkRuleResolver - example: d1.a.b -> devices/d1/commands/a/b', () => {
  assert.deepEqual(commands.resolve(delivery('d1.a.b')), { rule: 'commands', topic: 'devices/d1/commands/a/b', qos: 1, retain: false });
});

test('DownlinkRuleResolver - example: the word room/1 becomes the level room.1', () => {
  assert.deepEqual(commands.resolve(delivery('d1.room/1')), { rule: 'commands', topic: 'devices/d1/commands/room.1', qos: 1, retain: false });
  assert.deepEqual(commands.resolve(delivery('d/1.set.room/1')), {
    rule: 'commands',
    topic: 'devices/d.1/commands/set/room.1',
    qos: 1,
    retain: false,
  });
});

test('DownlinkRuleResolver - retained when the rule says so, or when the delivery carries x-mqtt-retain: true', () => {
  const retained = resolver({ routingKey: '{id}', topic: 'r/{id}', retain: true });
  assert.equal(retained.resolve(delivery('a'))?.retain, true);
  assert.equal(commands.resolve(delivery('d1'))?.retain, false);
  for (const value of [true, 'true', Buffer.from('true')]) {
    assert.equal(commands.resolve(delivery('d1', { headers: { 'x-mqtt-retain': value } }))?.retain, true, `header value ${String(value)}`);
  }
  for (const value of [false, 'false', 1, 'yes', null]) {
    assert.equal(commands.resolve(delivery('d1', { headers: { 'x-mqtt-retain': value } }))?.retain, false, `header value ${String(value)}`);
  }
});

test('DownlinkRuleResolver - example: d1 (zero words under #) -> devices/d1/commands', () => {
  assert.deepEqual(commands.resolve(delivery('d1')), { rule: 'commands', topic: 'devices/d1/commands', qos: 1, retain: false });
});

test('DownlinkRuleResolver - example: an empty word under # is one empty level ("d1." -> devices/d1/commands/)', () => {
  assert.equal(commands.resolve(delivery('d1.'))?.topic, 'devices/d1/commands/');
});

test('DownlinkRuleResolver - a routing key that does not match the pattern gives null', () => {
  const reboot = resolver({ routingKey: 'cmd.{deviceId}.reboot', topic: 'devices/{deviceId}/reboot' });
  assert.deepEqual(reboot.resolve(delivery('cmd.d1.reboot')), { rule: 'r', topic: 'devices/d1/reboot', qos: 0, retain: false });
  assert.equal(reboot.resolve(delivery('cmd.d1.shutdown')), null);
  assert.equal(reboot.resolve(delivery('cmd.d1')), null);
  assert.equal(reboot.resolve(delivery('cmd.d1.reboot.now')), null);
  assert.equal(reboot.resolve(delivery('other.d1.reboot')), null);
});

test('DownlinkRuleResolver - "*" matches one word without capturing it', () => {
  const r = resolver({ routingKey: '*.{deviceId}', topic: 'd/{deviceId}' });
  assert.equal(r.resolve(delivery('site.d1'))?.topic, 'd/d1');
  assert.equal(r.resolve(delivery('d1')), null);
  assert.equal(r.resolve(delivery('a.b.c')), null);
});

// --- built-in placeholders --------------------------------------------------------------------

test('DownlinkRuleResolver - {routingKey} is the whole key as a topic', () => {
  const r = resolver({ routingKey: '#', exchange: 'ex', topic: 'raw/{routingKey}' });
  assert.equal(r.resolve(delivery('a.b.c'))?.topic, 'raw/a/b/c');
  assert.equal(r.resolve(delivery('a.room/1'))?.topic, 'raw/a/room.1');
});

test('DownlinkRuleResolver - {exchange} is the delivery\'s exchange, as it is', () => {
  const r = resolver({ routingKey: '#', exchange: 'ex', topic: 'from/{exchange}/{#}' });
  assert.equal(r.resolve(delivery('x', { exchange: 'ops.commands' }))?.topic, 'from/ops.commands/x');
});

test('DownlinkRuleResolver - {headers.NAME} reads a header of the delivery', () => {
  const r = resolver({ routingKey: '{deviceId}.#', exchange: 'ex', topic: 'devices/{deviceId}/{headers.x-kind}' });
  assert.equal(r.resolve(delivery('d1', { headers: { 'x-kind': 'ota' } }))?.topic, 'devices/d1/ota');
  assert.equal(r.resolve(delivery('d1', { headers: { 'x-kind': Buffer.from('cfg') } }))?.topic, 'devices/d1/cfg');
  assert.equal(r.resolve(delivery('d1', { headers: { 'x-kind': 3 } }))?.topic, 'devices/d1/3');
});

test('DownlinkRuleResolver - a missing {headers.NAME} is a RenderError', () => {
  const r = resolver({ routingKey: '#', exchange: 'ex', topic: 'x/{headers.target}' });
  assertRenderError(() => r.resolve(delivery('a', { headers: {} })), 'header "target" is missing');
  assertRenderError(() => r.resolve(delivery('a')), 'header "target" is missing');
});

test('DownlinkRuleResolver - a header that does not match the pattern is never read', () => {
  const r = resolver({ routingKey: 'only.this', exchange: 'ex', topic: 'x/{headers.target}' });
  assert.equal(r.resolve(delivery('other.key')), null);
});

// --- invalid rendered topics ----------------------------------------------------------------

test('DownlinkRuleResolver - a rendered topic containing "+" is a RenderError', () => {
  assertRenderError(
    () => commands.resolve(delivery('d+1.reboot')),
    'the rendered topic "devices/d+1/commands/reboot" is not a valid topic name: topic name "devices/d+1/commands/reboot" contains a wildcard; wildcards are only allowed in filters [MQTT-4.7.1-1]',
  );
});

test('DownlinkRuleResolver - a rendered topic containing "#" is a RenderError', () => {
  assertRenderError(
    () => commands.resolve(delivery('d1.a#')),
    'the rendered topic "devices/d1/commands/a#" is not a valid topic name: topic name "devices/d1/commands/a#" contains a wildcard; wildcards are only allowed in filters [MQTT-4.7.1-1]',
  );
});

test('DownlinkRuleResolver - a wildcard arriving in a header is a RenderError too', () => {
  const r = resolver({ routingKey: '#', exchange: 'ex', topic: 'x/{headers.h}' });
  assertRenderError(
    () => r.resolve(delivery('a', { headers: { h: '#' } })),
    'the rendered topic "x/#" is not a valid topic name: topic name "x/#" contains a wildcard; wildcards are only allowed in filters [MQTT-4.7.1-1]',
  );
});

test('DownlinkRuleResolver - an empty rendered topic is a RenderError', () => {
  const r = resolver({ queue: 'q', topic: '{routingKey}' });
  assertRenderError(
    () => r.resolve(delivery('')),
    'the rendered topic "" is not a valid topic name: a topic name must be at least one character long [MQTT-4.7.3-1]',
  );
  const h = resolver({ queue: 'q', topic: '{headers.t}' });
  assertRenderError(
    () => h.resolve(delivery('k', { headers: { t: '' } })),
    'the rendered topic "" is not a valid topic name: a topic name must be at least one character long [MQTT-4.7.3-1]',
  );
});

test('DownlinkRuleResolver - a rendered topic with U+0000 is a RenderError', () => {
  const r = resolver({ queue: 'q', topic: 'x/{routingKey}' });
  assertRenderError(
    () => r.resolve(delivery('a\u0000b')),
    'the rendered topic "x/a\u0000b" is not a valid topic name: a topic name must not contain U+0000 [MQTT-1.5.3-2]',
  );
});

// --- queue rules ----------------------------------------------------------------------------

test('DownlinkRuleResolver - a queue rule takes every routing key', () => {
  const r = resolver({ queue: 'device-commands', topic: 'q/{routingKey}', qos: 2, retain: true });
  assert.equal(r.rule.bindingKey, null);
  assert.deepEqual(r.resolve(delivery('a.b', { exchange: '' })), { rule: 'r', topic: 'q/a/b', qos: 2, retain: true });
  assert.deepEqual(r.resolve(delivery('single')), { rule: 'r', topic: 'q/single', qos: 2, retain: true });
  assert.deepEqual(r.resolve(delivery('x.y.z.w')), { rule: 'r', topic: 'q/x/y/z/w', qos: 2, retain: true });
});

test('DownlinkRuleResolver - a queue rule may use {#} for the whole key', () => {
  const r = resolver({ queue: 'q', topic: 'all/{#}' });
  assert.equal(r.resolve(delivery('a.b'))?.topic, 'all/a/b');
});

test('DownlinkRuleResolver - a queue rule with a constant topic always gives that topic', () => {
  const r = resolver({ queue: 'q', topic: 'broadcast/all' });
  assert.equal(r.rule.topic.constant, 'broadcast/all');
  assert.equal(r.resolve(delivery('anything.at.all'))?.topic, 'broadcast/all');
});

// --- AMQP 1.0 rules: address and subject -------------------------------------------------------

test('DownlinkRuleResolver - AMQP 1.0: the subject pattern captures feed the topic', () => {
  const rule = resolver({ address: '/amq/queue/cmd', subject: '{deviceId}.#', topic: 'devices/{deviceId}/commands/{#}' });
  assert.equal(rule.rule.bindingKey, null);
  assert.deepEqual(rule.resolve({ address: '/amq/queue/cmd', subject: 'd1.reboot.room/1' }), {
    rule: 'r',
    topic: 'devices/d1/commands/reboot/room.1',
    qos: 0,
    retain: false,
  });
  assert.equal(rule.resolve({ address: '/amq/queue/cmd', subject: undefined }), null);
});

test('DownlinkRuleResolver - AMQP 1.0: a message without a subject matches only a rule without a subject pattern', () => {
  const withPattern = resolver({ address: 'q', subject: '#', topic: 't' });
  assert.equal(withPattern.resolve({ address: 'q', subject: undefined }), null);
  const without = resolver({ address: 'q', topic: 'from/{address}/{subject}x' });
  assert.equal(without.resolve({ address: 'q', subject: undefined })?.topic, 'from/q/x');
  assert.equal(without.resolve({ address: 'q', subject: 'a.b' })?.topic, 'from/q/a/bx');
});

test('compileDownlinkRule - AMQP 1.0: {routingKey} and {exchange} are 0-9-1 names; {subject} and {address} are offered', () => {
  assert.throws(
    () => compileDownlinkRule({ name: 'r', qos: 0, address: 'q', topic: '{routingKey}' }),
    /\{routingKey\} is not available here \(available: \{#\}, \{subject\}, \{address\}, \{headers\.NAME\}\)/,
  );
});
