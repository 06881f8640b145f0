import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filterMatches } from '../../../src/mqtt/topic-filter.js';

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
