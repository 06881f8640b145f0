import assert from 'node:assert/strict';
import { test } from 'node:test';
import { topicLimitBroken, type TopicLimits } from '../../../src/mqtt/limits.js';

const wide: TopicLimits = { maxTopicBytes: 65_535, maxTopicLevels: 128 };

test('topicLimitBroken - a topic within both limits gives null', () => {
  assert.equal(topicLimitBroken('devices/42/telemetry', { maxTopicBytes: 100, maxTopicLevels: 3 }), null);
  assert.equal(topicLimitBroken('a', { maxTopicBytes: 1, maxTopicLevels: 1 }), null);
  assert.equal(topicLimitBroken('', { maxTopicBytes: 1, maxTopicLevels: 1 }), null);
});

test('topicLimitBroken - ASCII length: exactly at the limit passes, one byte more is topic_length', () => {
  assert.equal(topicLimitBroken('abcd', { maxTopicBytes: 4, maxTopicLevels: 10 }), null);
  assert.equal(topicLimitBroken('abcde', { maxTopicBytes: 4, maxTopicLevels: 10 }), 'topic_length');
  assert.equal(topicLimitBroken('ab', { maxTopicBytes: 2, maxTopicLevels: 10 }), null);
  assert.equal(topicLimitBroken('x'.repeat(65_535), wide), null);
  assert.equal(topicLimitBroken('x'.repeat(65_536), wide), 'topic_length');
});

test('topicLimitBroken - the length is counted in UTF-8 bytes, not characters', () => {
  // é = 2 bytes, € = 3 bytes, 😀 = 4 bytes (2 UTF-16 units).
  assert.equal(Buffer.byteLength('é€😀', 'utf8'), 9);
  assert.equal(topicLimitBroken('éé', { maxTopicBytes: 4, maxTopicLevels: 10 }), null);
  assert.equal(topicLimitBroken('éé', { maxTopicBytes: 3, maxTopicLevels: 10 }), 'topic_length');
  assert.equal(topicLimitBroken('€€', { maxTopicBytes: 6, maxTopicLevels: 10 }), null);
  assert.equal(topicLimitBroken('€€', { maxTopicBytes: 5, maxTopicLevels: 10 }), 'topic_length');
  assert.equal(topicLimitBroken('😀', { maxTopicBytes: 4, maxTopicLevels: 10 }), null);
  assert.equal(topicLimitBroken('😀', { maxTopicBytes: 3, maxTopicLevels: 10 }), 'topic_length');
  assert.equal(topicLimitBroken('a😀', { maxTopicBytes: 4, maxTopicLevels: 10 }), 'topic_length');
  assert.equal(topicLimitBroken('é€😀', { maxTopicBytes: 9, maxTopicLevels: 10 }), null);
  assert.equal(topicLimitBroken('é€😀', { maxTopicBytes: 8, maxTopicLevels: 10 }), 'topic_length');
  // 4 characters (4 UTF-16 units) but 8 bytes.
  assert.equal(topicLimitBroken('a/€€', { maxTopicBytes: 8, maxTopicLevels: 10 }), null);
  assert.equal(topicLimitBroken('a/€€', { maxTopicBytes: 7, maxTopicLevels: 10 }), 'topic_length');
});

test('topicLimitBroken - levels are the number of / plus one', () => {
  const cases: Array<[string, number]> = [
    ['a', 1],
    ['', 1],
    ['a/b', 2],
    ['/', 2],
    ['/a', 2],
    ['a/', 2],
    ['a//b', 3],
    ['//', 3],
    ['a/+/#', 3],
    ['devices/x/y/z/', 5],
  ];
  for (const [topic, levels] of cases) {
    assert.equal(topicLimitBroken(topic, { maxTopicBytes: 100, maxTopicLevels: levels }), null, `${JSON.stringify(topic)} has ${levels} levels: at the limit`);
    if (levels > 1) {
      assert.equal(topicLimitBroken(topic, { maxTopicBytes: 100, maxTopicLevels: levels - 1 }), 'topic_levels', `${JSON.stringify(topic)} has ${levels} levels: over ${levels - 1}`);
    }
  }
});

test('topicLimitBroken - a multi-byte character next to / does not change the level count', () => {
  assert.equal(topicLimitBroken('é/😀/€', { maxTopicBytes: 100, maxTopicLevels: 3 }), null);
  assert.equal(topicLimitBroken('é/😀/€', { maxTopicBytes: 100, maxTopicLevels: 2 }), 'topic_levels');
});

test('topicLimitBroken - when both limits are broken, topic_length is reported', () => {
  assert.equal(topicLimitBroken('a/b/c/d', { maxTopicBytes: 3, maxTopicLevels: 2 }), 'topic_length');
  assert.equal(topicLimitBroken('a/b/c/d', { maxTopicBytes: 7, maxTopicLevels: 2 }), 'topic_levels');
});

test('topicLimitBroken - a long topic with few levels is topic_length, a short one with many levels topic_levels', () => {
  assert.equal(topicLimitBroken(`a/${'x'.repeat(200)}`, { maxTopicBytes: 201, maxTopicLevels: 2 }), 'topic_length');
  assert.equal(topicLimitBroken(`a/${'x'.repeat(199)}`, { maxTopicBytes: 201, maxTopicLevels: 2 }), null);
  assert.equal(topicLimitBroken('/'.repeat(9), { maxTopicBytes: 100, maxTopicLevels: 9 }), 'topic_levels');
  assert.equal(topicLimitBroken('/'.repeat(8), { maxTopicBytes: 100, maxTopicLevels: 9 }), null);
});
