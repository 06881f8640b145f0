import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertMappingError } from '../../helpers/mapping-errors.js';
import { ROUTING_KEY_SYNTAX, TOPIC_SYNTAX } from '../../../src/mapping/limits.js';
import { bindingKeyOf, compilePattern, patternMatches, type CompiledPattern, type PatternSyntax } from '../../../src/mapping/pattern.js';


const topicPattern = (source: string): CompiledPattern => compilePattern(source, TOPIC_SYNTAX);
const keyPattern = (source: string): CompiledPattern => compilePattern(source, ROUTING_KEY_SYNTAX);
const matchesTopic = (pattern: string, topic: string): boolean => patternMatches(topicPattern(pattern), topic.split('/'), true);
const matchesKey = (pattern: string, key: string): boolean => patternMatches(keyPattern(pattern), key.split('.'), false);

/** Asserts that compiling throws MappingError BRIDGE_ERR_PATTERN_INVALID with exactly this message. */
function assertInvalid(source: string, syntax: PatternSyntax, message: string): void {
  assertMappingError(() => compilePattern(source, syntax), 'BRIDGE_ERR_PATTERN_INVALID', syntax.field, message);
}

// --- compilePattern: structure -------------------------------------------------------------

test('compilePattern - literal levels become literal segments', () => {
  const pattern = topicPattern('devices/d1/telemetry');
  assert.deepEqual(pattern.segments, [
    { kind: 'literal', value: 'devices' },
    { kind: 'literal', value: 'd1' },
    { kind: 'literal', value: 'telemetry' },
  ]);
  assert.equal(pattern.source, 'devices/d1/telemetry');
  assert.equal(pattern.separator, '/');
  assert.equal(pattern.multiIndex, -1);
  assert.deepEqual([...pattern.captures], []);
});

test('compilePattern - "+" is an anonymous single-level wildcard', () => {
  const pattern = topicPattern('a/+/c');
  assert.deepEqual(pattern.segments, [
    { kind: 'literal', value: 'a' },
    { kind: 'single', name: null },
    { kind: 'literal', value: 'c' },
  ]);
  assert.deepEqual([...pattern.captures], []);
});

test('compilePattern - "{name}" is a single-level capture recorded with its segment index', () => {
  const pattern = topicPattern('devices/{deviceId}/x/{room_1}/{Type-2}');
  assert.deepEqual(pattern.segments, [
    { kind: 'literal', value: 'devices' },
    { kind: 'single', name: 'deviceId' },
    { kind: 'literal', value: 'x' },
    { kind: 'single', name: 'room_1' },
    { kind: 'single', name: 'Type-2' },
  ]);
  assert.deepEqual([...pattern.captures], [
    ['deviceId', 1],
    ['room_1', 3],
    ['Type-2', 4],
  ]);
});

test('compilePattern - a final "#" is a multi segment and sets multiIndex', () => {
  const pattern = topicPattern('devices/{deviceId}/telemetry/#');
  assert.deepEqual(pattern.segments, [
    { kind: 'literal', value: 'devices' },
    { kind: 'single', name: 'deviceId' },
    { kind: 'literal', value: 'telemetry' },
    { kind: 'multi' },
  ]);
  assert.equal(pattern.multiIndex, 3);
  assert.equal(topicPattern('#').multiIndex, 0);
  assert.deepEqual(topicPattern('#').segments, [{ kind: 'multi' }]);
});

test('compilePattern - empty levels are literal empty segments', () => {
  assert.deepEqual(topicPattern('a//b').segments, [
    { kind: 'literal', value: 'a' },
    { kind: 'literal', value: '' },
    { kind: 'literal', value: 'b' },
  ]);
  assert.deepEqual(topicPattern('/').segments, [
    { kind: 'literal', value: '' },
    { kind: 'literal', value: '' },
  ]);
});

test('compilePattern - the downlink syntax splits on "." and uses "*" as the single wildcard', () => {
  const pattern = keyPattern('{deviceId}.*.cmd.#');
  assert.equal(pattern.separator, '.');
  assert.deepEqual(pattern.segments, [
    { kind: 'single', name: 'deviceId' },
    { kind: 'single', name: null },
    { kind: 'literal', value: 'cmd' },
    { kind: 'multi' },
  ]);
  assert.equal(pattern.multiIndex, 3);
  assert.deepEqual([...pattern.captures], [['deviceId', 0]]);
});

test('compilePattern - "/" is an ordinary character in downlink patterns and "." in uplink patterns', () => {
  assert.deepEqual(keyPattern('room/1.x').segments, [
    { kind: 'literal', value: 'room/1' },
    { kind: 'literal', value: 'x' },
  ]);
  assert.deepEqual(topicPattern('room.1/x').segments, [
    { kind: 'literal', value: 'room.1' },
    { kind: 'literal', value: 'x' },
  ]);
});

test('compilePattern - the other direction\'s wildcard is a literal ("*" uplink, "+" downlink)', () => {
  assert.deepEqual(topicPattern('a/*').segments, [
    { kind: 'literal', value: 'a' },
    { kind: 'literal', value: '*' },
  ]);
  assert.deepEqual(keyPattern('a.+').segments, [
    { kind: 'literal', value: 'a' },
    { kind: 'literal', value: '+' },
  ]);
});

// --- compilePattern: errors --------------------------------------------------------------

test('compilePattern - an empty pattern is an error', () => {
  assertInvalid('', TOPIC_SYNTAX, 'topic "": a pattern must not be empty');
  assertInvalid('', ROUTING_KEY_SYNTAX, 'routingKey "": a pattern must not be empty');
});

test('compilePattern - "#" that is not the last segment is an error', () => {
  assertInvalid('a/#/b', TOPIC_SYNTAX, 'topic "a/#/b": "#" is only allowed as the last segment');
  assertInvalid('#/a', TOPIC_SYNTAX, 'topic "#/a": "#" is only allowed as the last segment');
  assertInvalid('#.x', ROUTING_KEY_SYNTAX, 'routingKey "#.x": "#" is only allowed as the last segment');
});

test('compilePattern - a segment mixing "#" with other characters (a#) is an error', () => {
  assertInvalid(
    'a#',
    TOPIC_SYNTAX,
    'topic "a#": segment "a#" mixes "#" with other characters; wildcards and captures must be a whole segment',
  );
  assertInvalid(
    'x.a#',
    ROUTING_KEY_SYNTAX,
    'routingKey "x.a#": segment "a#" mixes "#" with other characters; wildcards and captures must be a whole segment',
  );
});

test('compilePattern - a segment mixing the single wildcard with other characters is an error', () => {
  assertInvalid(
    'a/+b',
    TOPIC_SYNTAX,
    'topic "a/+b": segment "+b" mixes "+" with other characters; wildcards and captures must be a whole segment',
  );
  assertInvalid(
    'a*.b',
    ROUTING_KEY_SYNTAX,
    'routingKey "a*.b": segment "a*" mixes "*" with other characters; wildcards and captures must be a whole segment',
  );
});

test('compilePattern - a capture mixed with text (dev-{id}) is an error', () => {
  assertInvalid(
    'devices/dev-{id}',
    TOPIC_SYNTAX,
    'topic "devices/dev-{id}": segment "dev-{id}" mixes "{" with other characters; wildcards and captures must be a whole segment',
  );
  assertInvalid(
    '{id}-x',
    TOPIC_SYNTAX,
    'topic "{id}-x": segment "{id}-x" mixes "{" with other characters; wildcards and captures must be a whole segment',
  );
  assertInvalid(
    'dev-{id}.x',
    ROUTING_KEY_SYNTAX,
    'routingKey "dev-{id}.x": segment "dev-{id}" mixes "{" with other characters; wildcards and captures must be a whole segment',
  );
});

test('compilePattern - a lone "}" in a segment is an error', () => {
  assertInvalid(
    'a}',
    TOPIC_SYNTAX,
    'topic "a}": segment "a}" mixes "}" with other characters; wildcards and captures must be a whole segment',
  );
});

test('compilePattern - a capture name used twice is an error', () => {
  assertInvalid('a/{id}/{id}', TOPIC_SYNTAX, 'topic "a/{id}/{id}": {id} is captured twice');
  assertInvalid('{id}.{id}', ROUTING_KEY_SYNTAX, 'routingKey "{id}.{id}": {id} is captured twice');
});

test('compilePattern - reserved names ({clientId}, {topic}, {routingKey}, ...) cannot be captured', () => {
  for (const name of ['clientId', 'username', 'topic', 'qos', 'routingKey', 'exchange', 'headers']) {
    assertInvalid(`a/{${name}}`, TOPIC_SYNTAX, `topic "a/{${name}}": {${name}} is a built-in placeholder and cannot be captured`);
    assertInvalid(`{${name}}.a`, ROUTING_KEY_SYNTAX, `routingKey "{${name}}.a": {${name}} is a built-in placeholder and cannot be captured`);
  }
});

test('compilePattern - reserved names are the set given in the syntax', () => {
  const syntax: PatternSyntax = { ...TOPIC_SYNTAX, reserved: new Set(['custom']) };
  assert.deepEqual([...compilePattern('{clientId}', syntax).captures], [['clientId', 0]]);
  assertInvalid('{custom}', syntax, 'topic "{custom}": {custom} is a built-in placeholder and cannot be captured');
});

test('compilePattern - "{#}" written as a capture is an error that points to the final "#"', () => {
  assertInvalid('a/{#}', TOPIC_SYNTAX, 'topic "a/{#}": write a final "#" to capture {#}, not "{#}"');
  assertInvalid('a.{#}', ROUTING_KEY_SYNTAX, 'routingKey "a.{#}": write a final "#" to capture {#}, not "{#}"');
});

test('compilePattern - a capture whose name is not an identifier is an error', () => {
  const rule = 'a name starts with a letter or "_" and holds letters, digits, "_" or "-"';
  assertInvalid('{}', TOPIC_SYNTAX, `topic "{}": "{}" is not a capture: ${rule}`);
  assertInvalid('a/{1a}', TOPIC_SYNTAX, `topic "a/{1a}": "{1a}" is not a capture: ${rule}`);
  assertInvalid('{a b}', TOPIC_SYNTAX, `topic "{a b}": "{a b}" is not a capture: ${rule}`);
  assertInvalid('{-x}', ROUTING_KEY_SYNTAX, `routingKey "{-x}": "{-x}" is not a capture: ${rule}`);
});

test('compilePattern - U+0000 in a literal segment is an error', () => {
  assertInvalid('a/b\u0000c', TOPIC_SYNTAX, 'topic "a/b\u0000c": a pattern must not contain U+0000');
});

test('compilePattern - the error names the field given in the syntax', () => {
  assertInvalid('', { ...TOPIC_SYNTAX, field: 'uplink.topic' }, 'uplink.topic "": a pattern must not be empty');
});

// --- patternMatches -----------------------------------------------------------------------

test('patternMatches - a literal pattern matches exactly that topic', () => {
  assert.equal(matchesTopic('a/b/c', 'a/b/c'), true);
  assert.equal(matchesTopic('a/b/c', 'a/b'), false);
  assert.equal(matchesTopic('a/b/c', 'a/b/c/d'), false);
  assert.equal(matchesTopic('a/b/c', 'a/B/c'), false);
});

test('patternMatches - "+" and "{name}" match exactly one level, including an empty one', () => {
  assert.equal(matchesTopic('a/+/c', 'a/b/c'), true);
  assert.equal(matchesTopic('a/{x}/c', 'a/b/c'), true);
  assert.equal(matchesTopic('a/+/c', 'a//c'), true);
  assert.equal(matchesTopic('a/{x}/c', 'a//c'), true);
  assert.equal(matchesTopic('a/+/c', 'a/b/b/c'), false);
  assert.equal(matchesTopic('a/+/c', 'a/c'), false);
  assert.equal(matchesTopic('a/+', 'a/b/c'), false);
});

test('patternMatches - a final "#" matches zero or more levels (a/# matches a)', () => {
  assert.equal(matchesTopic('a/#', 'a'), true);
  assert.equal(matchesTopic('a/#', 'a/b'), true);
  assert.equal(matchesTopic('a/#', 'a/b/c/d'), true);
  assert.equal(matchesTopic('a/#', 'a/'), true);
  assert.equal(matchesTopic('a/#', 'b/a'), false);
  assert.equal(matchesTopic('#', 'anything/at/all'), true);
});

test('patternMatches - a leading wildcard does not match a "$" topic when the guard is on [MQTT-4.7.2-1]', () => {
  assert.equal(matchesTopic('#', '$SYS/x'), false);
  assert.equal(matchesTopic('+/x', '$SYS/x'), false);
  assert.equal(matchesTopic('{a}/x', '$SYS/x'), false);
  assert.equal(matchesTopic('$SYS/#', '$SYS/x'), true);
  assert.equal(matchesTopic('a/+', 'a/$x'), true);
  assert.equal(patternMatches(topicPattern('#'), ['$SYS', 'x'], false), true);
});

test('patternMatches - downlink words: "*" one word, "#" zero or more', () => {
  assert.equal(matchesKey('{deviceId}.#', 'd1'), true);
  assert.equal(matchesKey('{deviceId}.#', 'd1.reboot'), true);
  assert.equal(matchesKey('{deviceId}.#', 'd1.a.b'), true);
  assert.equal(matchesKey('a.*.c', 'a.b.c'), true);
  assert.equal(matchesKey('a.*.c', 'a.b.b.c'), false);
  assert.equal(matchesKey('a.*.c', 'a.c'), false);
  assert.equal(matchesKey('cmd.{x}', 'cmd.x.y'), false);
  assert.equal(matchesKey('cmd.{x}', 'other.x'), false);
});

// --- bindingKeyOf -------------------------------------------------------------------------

test('bindingKeyOf - "{name}" becomes "*" and "#" stays "#"', () => {
  assert.equal(bindingKeyOf(keyPattern('{deviceId}.#')), '*.#');
  assert.equal(bindingKeyOf(keyPattern('a.{x}.*.#')), 'a.*.*.#');
  assert.equal(bindingKeyOf(keyPattern('#')), '#');
});

test('bindingKeyOf - literal words are kept as written', () => {
  assert.equal(bindingKeyOf(keyPattern('commands.reboot')), 'commands.reboot');
  assert.equal(bindingKeyOf(keyPattern('room/1.{d}')), 'room/1.*');
  assert.equal(bindingKeyOf(keyPattern('a..b')), 'a..b');
});
