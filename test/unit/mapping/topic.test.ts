import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertTopicName } from '../../../src/mapping/topic.js';

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
