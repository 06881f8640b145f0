import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filterCovers, filtersOverlap, holdsForbiddenCharacters, isWellFormedFilter, levelsMatch, levelsOf, topicLevels, topicNameProblem } from '../../../src/protocol/mqtt.js';

const filterMatches = (filter: string, topic: string): boolean => levelsMatch(levelsOf(filter), levelsOf(topic));

test('filterMatches - literal, + and # as MQTT 3.1.1 defines them', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+/c', 'a//c', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['+/+', '/b', true],
    ['a/b/#', 'a', false],
  ];
  for (const [filter, topic, expected] of cases) assert.equal(filterMatches(filter, topic), expected, `${filter} ~ ${topic}`);
});

test('filterMatches - a leading wildcard does not match a $ topic [MQTT-4.7.2-1]', () => {
  assert.equal(filterMatches('#', '$SYS/uptime'), false);
  assert.equal(filterMatches('+/uptime', '$SYS/uptime'), false);
  assert.equal(filterMatches('$SYS/#', '$SYS/uptime'), true);
});

test('filterCovers - every topic the inner filter matches is matched by the outer one', () => {
  const cases: Array<[string, string, boolean]> = [
    ['a/#', 'a/b/#', true],
    ['a/#', 'a', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/b', 'a/+', false],
    ['a/+', 'a/#', false],
    ['a/+/c', 'a/b/#', false],
    ['#', '$SYS/#', false],
    ['$SYS/#', '$SYS/uptime', true],
  ];
  for (const [outer, inner, expected] of cases) assert.equal(filterCovers(outer, inner), expected, `${outer} covers ${inner}`);
});

test('filtersOverlap - some topic matches both filters', () => {
  const cases: Array<[string, string, boolean]> = [
    ['devices/+/secrets/#', 'devices/#', true],
    ['devices/+/secrets/#', 'devices/d1/+/key', true],
    ['devices/+/secrets/#', 'devices/+/telemetry', false],
    ['a/#', 'a', true],
    ['a/+', 'a', false],
    ['a/+', 'a/b/c', false],
    ['+/+', 'a/b', true],
    ['a/b', 'a/c', false],
    ['#', '$SYS/#', false],
    ['+/uptime', '$SYS/+', false],
    ['$SYS/#', '$SYS/+', true],
  ];
  for (const [a, b, expected] of cases) {
    assert.equal(filtersOverlap(a, b), expected, `${a} overlaps ${b}`);
    assert.equal(filtersOverlap(b, a), expected, `${b} overlaps ${a}`);
  }
});

test('isWellFormedFilter - + is a whole level, # the whole last level, and a filter is not empty [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]', () => {
  for (const filter of ['a', '#', '+', 'a/#', '+/+', 'a/+/c', '/', '/#', '+/#', 'a//b', '$SYS/#', 'ü/€']) {
    assert.equal(isWellFormedFilter(filter), true, filter);
  }
  for (const filter of ['', 'a+', '+a', 'a#', '#a', 'a/#/b', '#/', '#/#', 'a/b+', 'a/+b/c', 'a/b#', '++', '##']) {
    assert.equal(isWellFormedFilter(filter), false, filter);
  }
});

test('topicLevels - counts the levels of a topic or filter, empty levels included', () => {
  assert.deepEqual(['a', 'a/b', 'a/b/c', '/', 'a//b/', '#', '+/+/#'].map(topicLevels), [1, 2, 3, 2, 4, 1, 3]);
});

test('topicNameProblem - a topic name has no wildcard, at least one character, no U+0000 and at most 65,535 bytes', () => {
  assert.equal(topicNameProblem('devices/d1/state'), null);
  assert.match(topicNameProblem('')!, /at least one character long \[MQTT-4\.7\.3-1\]/);
  assert.match(topicNameProblem('a/+')!, /wildcard/);
  assert.match(topicNameProblem('a/#')!, /wildcard/);
  assert.match(topicNameProblem('a\u0000b')!, /U\+0000/);
  assert.equal(topicNameProblem('é'.repeat(32_767)), null, '65,534 bytes');
  assert.match(topicNameProblem('é'.repeat(32_768))!, /longer than 65535 bytes/);
});

test('holdsForbiddenCharacters - U+0000, and U+FFFD (how bytes that are not UTF-8 arrive)', () => {
  assert.deepEqual(['a', 'a\u0000', 'a\ufffd', ''].map(holdsForbiddenCharacters), [false, true, true, false]);
});
