import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertTopicName, topicLevels } from '../../../src/mapping/topic.js';

test('topicLevels - counts the levels of a topic or filter, empty levels included', () => {
  assert.deepEqual(['a', 'a/b', 'a/b/c', '/', 'a//b/', '#', '+/+/#'].map(topicLevels), [1, 2, 3, 2, 4, 1, 3]);
});

test('assertTopicName - a topic name has no wildcard, at least one character and no U+0000', () => {
  assert.doesNotThrow(() => assertTopicName('devices/d1/state'));
  for (const [topic, reason] of [
    ['', /at least one character/],
    ['a/+', /wildcard/],
    ['a/#', /wildcard/],
    ['a\u0000b', /U\+0000/],
  ] as const) {
    assert.throws(() => assertTopicName(topic), { code: 'BRIDGE_ERR_TOPIC_INVALID', message: reason });
  }
});
