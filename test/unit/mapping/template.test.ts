import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertMappingError, assertRenderError } from '../../helpers/mapping-errors.js';
import { levelToWord, wordToLevel } from '../../../src/mapping/encoding.js';
import { ROUTING_KEY_SYNTAX, TOPIC_SYNTAX } from '../../../src/mapping/limits.js';
import { compilePattern, type CompiledPattern } from '../../../src/mapping/pattern.js';
import {
  compileTemplate,
  DOWNLINK_BUILTINS,
  UPLINK_BUILTINS,
  type TemplateContext,
  type TemplateScope,
} from '../../../src/mapping/template.js';

const topicPattern = (source: string): CompiledPattern => compilePattern(source, TOPIC_SYNTAX);
const keyPattern = (source: string): CompiledPattern => compilePattern(source, ROUTING_KEY_SYNTAX);

const TELEMETRY = topicPattern('devices/{d}/telemetry/#');

/** Uplink routing key: values from the topic are re-encoded, "." is the target separator. */
function routingKeyScope(pattern: CompiledPattern = TELEMETRY): TemplateScope {
  return { field: 'routingKey', pattern, builtins: UPLINK_BUILTINS, headers: false, encode: levelToWord, targetSeparator: '.' };
}
/** Uplink header or exchange: values are taken as they are, no separator handling. */
function plainScope(pattern: CompiledPattern = TELEMETRY): TemplateScope {
  return { field: 'headers.x-h', pattern, builtins: UPLINK_BUILTINS, headers: false, encode: null, targetSeparator: null };
}
/** Downlink topic: words become levels, "/" is the target separator, {headers.NAME} allowed. */
function downlinkScope(pattern: CompiledPattern = keyPattern('{deviceId}.#')): TemplateScope {
  return { field: 'topic', pattern, builtins: DOWNLINK_BUILTINS, headers: true, encode: wordToLevel, targetSeparator: '/' };
}

function uplinkContext(topic: string, extra: Partial<TemplateContext> = {}): TemplateContext {
  return { segments: topic.split('/'), source: topic, clientId: 'client-1', username: 'user-1', qos: 1, ...extra };
}
function downlinkContext(routingKey: string, extra: Partial<TemplateContext> = {}): TemplateContext {
  return { segments: routingKey.split('.'), source: routingKey, exchange: 'commands', ...extra };
}

function assertTemplateInvalid(source: string, scope: TemplateScope, message: string): void {
  assertMappingError(() => compileTemplate(source, scope), 'BRIDGE_ERR_TEMPLATE_INVALID', scope.field, message);
}


// --- constants and escapes ----------------------------------------------------------------

test('compileTemplate - a literal template is a constant', () => {
  const template = compileTemplate('telemetry', plainScope());
  assert.equal(template.constant, 'telemetry');
  assert.equal(template.source, 'telemetry');
  assert.deepEqual(template.placeholders, []);
  assert.equal(template.render(uplinkContext('devices/d1/telemetry/x')), 'telemetry');
});

test('compileTemplate - a literal template is not re-encoded (dots and slashes stay)', () => {
  const template = compileTemplate('a.b/c', routingKeyScope());
  assert.equal(template.constant, 'a.b/c');
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), 'a.b/c');
});

test('compileTemplate - the empty template is the constant ""', () => {
  const template = compileTemplate('', plainScope());
  assert.equal(template.constant, '');
  assert.equal(template.render(uplinkContext('a')), '');
});

test('compileTemplate - "{{" and "}}" write literal braces and keep the template constant', () => {
  const template = compileTemplate('a{{b}}c', plainScope());
  assert.equal(template.constant, 'a{b}c');
  assert.deepEqual(template.placeholders, []);
  assert.equal(compileTemplate('{{d}}', plainScope()).constant, '{d}');
  assert.equal(compileTemplate('}}{{', plainScope()).constant, '}{');
});

test('compileTemplate - escaped braces next to a placeholder ("{{{d}}}" gives "{d1}")', () => {
  const template = compileTemplate('{{{d}}}', plainScope());
  assert.equal(template.constant, null);
  assert.deepEqual(template.placeholders, ['d']);
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), '{d1}');
});

test('compileTemplate - a template with a placeholder is not constant and lists its placeholders in order', () => {
  const template = compileTemplate('{d}.{#}.{clientId}.{d}', routingKeyScope());
  assert.equal(template.constant, null);
  assert.deepEqual(template.placeholders, ['d', '#', 'clientId', 'd']);
});

// --- errors ------------------------------------------------------------------------------

test('compileTemplate - an unknown placeholder is an error that lists what is available', () => {
  assertTemplateInvalid(
    '{deviceId}.x',
    routingKeyScope(),
    'routingKey "{deviceId}.x": {deviceId} is not available here (available: {d}, {#}, {clientId}, {username}, {topic}, {qos})',
  );
});

test('compileTemplate - the available list omits {#} when the pattern has no "#"', () => {
  assertTemplateInvalid(
    '{nope}',
    plainScope(topicPattern('a/{x}/{y}')),
    'headers.x-h "{nope}": {nope} is not available here (available: {x}, {y}, {clientId}, {username}, {topic}, {qos})',
  );
});

test('compileTemplate - the downlink available list names its built-ins and {headers.NAME}', () => {
  assertTemplateInvalid(
    'devices/{id}',
    downlinkScope(),
    'topic "devices/{id}": {id} is not available here (available: {deviceId}, {#}, {routingKey}, {exchange}, {headers.NAME})',
  );
});

test('compileTemplate - uplink built-ins are not available downlink and vice versa', () => {
  assertTemplateInvalid(
    '{clientId}',
    downlinkScope(),
    'topic "{clientId}": {clientId} is not available here (available: {deviceId}, {#}, {routingKey}, {exchange}, {headers.NAME})',
  );
  assertTemplateInvalid(
    '{routingKey}',
    routingKeyScope(),
    'routingKey "{routingKey}": {routingKey} is not available here (available: {d}, {#}, {clientId}, {username}, {topic}, {qos})',
  );
});

test('compileTemplate - {#} is an error when the pattern has no "#"', () => {
  assertTemplateInvalid(
    '{x}.{#}',
    routingKeyScope(topicPattern('a/{x}')),
    'routingKey "{x}.{#}": {#} is not available: the pattern "a/{x}" has no final "#" (available: {x}, {clientId}, {username}, {topic}, {qos})',
  );
});

test('compileTemplate - {headers.NAME} is not available uplink', () => {
  assertTemplateInvalid(
    '{headers.x}',
    routingKeyScope(),
    'routingKey "{headers.x}": {headers.x} is not available here (available: {d}, {#}, {clientId}, {username}, {topic}, {qos})',
  );
});

test('compileTemplate - {headers.} without a name is an error', () => {
  assertTemplateInvalid('a/{headers.}', downlinkScope(), 'topic "a/{headers.}": {headers.} needs a header name');
});

test('compileTemplate - an unclosed "{" is an error with its position', () => {
  assertTemplateInvalid('ab{d', plainScope(), 'headers.x-h "ab{d": unclosed "{" at position 3 (write "{{" for a literal brace)');
});

test('compileTemplate - an unmatched "}" is an error with its position', () => {
  assertTemplateInvalid('a}b', plainScope(), 'headers.x-h "a}b": unmatched "}" at position 2 (write "}}" for a literal brace)');
  assertTemplateInvalid('{d}}', plainScope(), 'headers.x-h "{d}}": unmatched "}" at position 4 (write "}}" for a literal brace)');
});

test('compileTemplate - "{}" and names with spaces are unknown placeholders', () => {
  assertTemplateInvalid('{}', plainScope(topicPattern('a')), 'headers.x-h "{}": {} is not available here (available: {clientId}, {username}, {topic}, {qos})');
  assertTemplateInvalid('{ d }', plainScope(topicPattern('{d}')), 'headers.x-h "{ d }": { d } is not available here (available: {d}, {clientId}, {username}, {topic}, {qos})');
});

// --- rendering: captures and {#} ----------------------------------------------------------

test('compileTemplate - captures render the matched level', () => {
  const template = compileTemplate('dev-{d}!', plainScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry/temp')), 'dev-d1!');
});

test('compileTemplate - {#} renders the levels under "#", re-encoded for a routing key', () => {
  const template = compileTemplate('{d}.{#}', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry/temp')), 'd1.temp');
  assert.equal(template.render(uplinkContext('devices/d1/telemetry/a/b/c')), 'd1.a.b.c');
  assert.equal(template.render(uplinkContext('devices/d.1/telemetry/room.1/t')), 'd/1.room/1.t');
});

test('compileTemplate - without an encoder, captures and {#} keep the topic form', () => {
  const template = compileTemplate('{d}|{#}', plainScope());
  assert.equal(template.render(uplinkContext('devices/d.1/telemetry/room.1/t')), 'd.1|room.1/t');
});

test('compileTemplate - the separator before a {#} that captured zero levels is dropped ("{d}.{#}" gives "d1")', () => {
  const template = compileTemplate('{d}.{#}', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), 'd1');
});

test('compileTemplate - one empty level under "#" is not zero levels ("devices/d1/telemetry/" gives "d1.")', () => {
  const template = compileTemplate('{d}.{#}', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry/')), 'd1.');
  assert.equal(template.render(uplinkContext('devices/d1/telemetry//')), 'd1..');
});

test('compileTemplate - the separator after a leading {#} that captured zero levels is dropped ("{#}.x" gives "x")', () => {
  const template = compileTemplate('{#}.x', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), 'x');
  assert.equal(template.render(uplinkContext('devices/d1/telemetry/a')), 'a.x');
});

test('compileTemplate - a {#} between two separators that captured zero levels leaves one separator', () => {
  const template = compileTemplate('pre.{#}.post', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), 'pre.post');
  assert.equal(template.render(uplinkContext('devices/d1/telemetry/a/b')), 'pre.a.b.post');
});

test('compileTemplate - only the target separator is dropped next to an empty {#}', () => {
  const template = compileTemplate('{d}/{#}', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), 'd1/');
});

test('compileTemplate - with no target separator nothing is dropped next to an empty {#}', () => {
  const template = compileTemplate('{d}.{#}', plainScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), 'd1.');
});

test('compileTemplate - {#} alone renders "" when it captured zero levels', () => {
  const template = compileTemplate('{#}', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d1/telemetry')), '');
});

// --- rendering: built-ins -----------------------------------------------------------------

test('compileTemplate - uplink built-ins {clientId}, {username}, {qos}, {topic}', () => {
  const template = compileTemplate('{clientId}|{username}|{qos}|{topic}', plainScope());
  assert.equal(template.render(uplinkContext('devices/d.1/telemetry', { qos: 2 })), 'client-1|user-1|2|devices/d.1/telemetry');
});

test('compileTemplate - missing username renders "" and missing qos renders "0"', () => {
  const template = compileTemplate('[{username}][{qos}][{clientId}]', plainScope());
  assert.equal(template.render({ segments: ['devices', 'd1', 'telemetry'], source: 'devices/d1/telemetry' }), '[][0][]');
});

test('compileTemplate - {topic} is re-encoded for a routing key, {clientId} is not', () => {
  const template = compileTemplate('{topic}|{clientId}', routingKeyScope());
  assert.equal(template.render(uplinkContext('devices/d.1/telemetry', { clientId: 'a.b/c' })), 'devices.d/1.telemetry|a.b/c');
});

// --- rendering: downlink ------------------------------------------------------------------

test('compileTemplate - downlink captures and {#} become levels ("d1.a.room/1" -> devices/d1/commands/a/room.1)', () => {
  const template = compileTemplate('devices/{deviceId}/commands/{#}', downlinkScope());
  assert.equal(template.render(downlinkContext('d1.a.room/1')), 'devices/d1/commands/a/room.1');
  assert.equal(template.render(downlinkContext('d/1.x')), 'devices/d.1/commands/x');
});

test('compileTemplate - downlink: the "/" before a {#} that captured zero words is dropped', () => {
  const template = compileTemplate('devices/{deviceId}/commands/{#}', downlinkScope());
  assert.equal(template.render(downlinkContext('d1')), 'devices/d1/commands');
  assert.equal(template.render(downlinkContext('d1.')), 'devices/d1/commands/');
});

test('compileTemplate - downlink {routingKey} is re-encoded and {exchange} is not', () => {
  const template = compileTemplate('{exchange}/{routingKey}', downlinkScope());
  assert.equal(template.render(downlinkContext('d1.room/1', { exchange: 'ex.1' })), 'ex.1/d1/room.1');
});

test('compileTemplate - downlink {exchange} renders "" when the delivery has none', () => {
  const template = compileTemplate('[{exchange}]', downlinkScope());
  assert.equal(template.render({ segments: ['d1'], source: 'd1' }), '[]');
});

test('compileTemplate - {headers.NAME} renders a string header as it is', () => {
  const template = compileTemplate('t/{headers.x-target}', downlinkScope());
  assert.equal(template.constant, null);
  assert.deepEqual(template.placeholders, ['headers.x-target']);
  assert.equal(template.render(downlinkContext('d1', { headers: { 'x-target': 'room.1' } })), 't/room.1');
});

test('compileTemplate - {headers.NAME} stringifies Buffer, number, bigint and boolean values', () => {
  const template = compileTemplate('{headers.h}', downlinkScope());
  assert.equal(template.render(downlinkContext('d1', { headers: { h: Buffer.from('caf\u00e9', 'utf8') } })), 'caf\u00e9');
  assert.equal(template.render(downlinkContext('d1', { headers: { h: 42 } })), '42');
  assert.equal(template.render(downlinkContext('d1', { headers: { h: 1.5 } })), '1.5');
  assert.equal(template.render(downlinkContext('d1', { headers: { h: 7n } })), '7');
  assert.equal(template.render(downlinkContext('d1', { headers: { h: false } })), 'false');
  assert.equal(template.render(downlinkContext('d1', { headers: { h: '' } })), '');
});

test('compileTemplate - a missing {headers.NAME} is a RenderError', () => {
  const template = compileTemplate('a/{headers.x}', downlinkScope());
  assertRenderError(() => template.render(downlinkContext('d1', { headers: { y: 'v' } })), 'header "x" is missing');
  assertRenderError(() => template.render(downlinkContext('d1')), 'header "x" is missing');
  assertRenderError(() => template.render(downlinkContext('d1', { headers: { x: null } })), 'header "x" is missing');
});

test('compileTemplate - a {headers.NAME} that is an object or array is a RenderError', () => {
  const template = compileTemplate('{headers.x}', downlinkScope());
  assertRenderError(() => template.render(downlinkContext('d1', { headers: { x: { a: 1 } } })), 'header "x" is not a string, number or boolean');
  assertRenderError(() => template.render(downlinkContext('d1', { headers: { x: ['a'] } })), 'header "x" is not a string, number or boolean');
});

test('compileTemplate - header names are case-sensitive', () => {
  const template = compileTemplate('{headers.X-Id}', downlinkScope());
  assert.equal(template.render(downlinkContext('d1', { headers: { 'X-Id': 'A' } })), 'A');
  assertRenderError(() => template.render(downlinkContext('d1', { headers: { 'x-id': 'a' } })), 'header "X-Id" is missing');
});

test('compileTemplate - {#} is the end of the topic from "#" on, empty levels and dots kept, after levels of any length', () => {
  const pattern = compilePattern('devices/+/{d}/#', TOPIC_SYNTAX);
  const key = compileTemplate('{d}.{#}', routingKeyScope(pattern));
  assert.equal(key.render(uplinkContext('devices/x/d1//a.b/c')), 'd1..a/b.c');
  assert.equal(key.render(uplinkContext('devices/longer-level/d.2/last')), 'd/2.last');
  assert.equal(key.render(uplinkContext('devices//d3/')), 'd3.');
  assert.equal(key.render(uplinkContext('devices/x/d4')), 'd4');
  const whole = compileTemplate('{#}', plainScope(compilePattern('#', TOPIC_SYNTAX)));
  assert.equal(whole.render(uplinkContext('a//b.c/')), 'a//b.c/');
  const downlink = compileTemplate('cmd/{#}', downlinkScope(keyPattern('{deviceId}.x.#')));
  assert.equal(downlink.render(downlinkContext('dev-1.x.a..b/c')), 'cmd/a//b.c');
});
