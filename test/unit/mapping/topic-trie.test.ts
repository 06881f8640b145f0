import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TOPIC_SYNTAX } from '../../../src/mapping/limits.js';
import { compilePattern } from '../../../src/mapping/pattern.js';
import { TopicTrie } from '../../../src/mapping/topic-trie.js';

/** A trie holding these uplink patterns, rule i at index i. */
function trieOf(...patterns: string[]): TopicTrie {
  const trie = new TopicTrie();
  patterns.forEach((source, index) => trie.add(compilePattern(source, TOPIC_SYNTAX), index));
  return trie;
}

const match = (trie: TopicTrie, topic: string): number => trie.match(topic.split('/'));

test('TopicTrie - an empty trie matches nothing (-1)', () => {
  assert.equal(match(new TopicTrie(), 'a'), -1);
});

test('TopicTrie - no matching rule returns -1', () => {
  const trie = trieOf('a/b', 'a/+/c', 'x/#');
  assert.equal(match(trie, 'b'), -1);
  assert.equal(match(trie, 'a/b/c/d'), -1);
  assert.equal(match(trie, 'a'), -1);
  assert.equal(match(trie, 'y/x'), -1);
});

test('TopicTrie - a literal pattern matches only the exact topic', () => {
  const trie = trieOf('a/b/c');
  assert.equal(match(trie, 'a/b/c'), 0);
  assert.equal(match(trie, 'a/b'), -1);
  assert.equal(match(trie, 'a/b/c/d'), -1);
  assert.equal(match(trie, 'A/b/c'), -1);
});

test('TopicTrie - the first (lowest index) matching rule wins even when a later rule is more specific', () => {
  assert.equal(match(trieOf('#', 'a/b'), 'a/b'), 0);
  assert.equal(match(trieOf('a/+', 'a/b'), 'a/b'), 0);
  assert.equal(match(trieOf('a/#', 'a/b/c', 'a/+/c'), 'a/b/c'), 0);
  assert.equal(match(trieOf('+/+/+', 'a/b/#', 'a/b/c'), 'a/b/c'), 0);
});

test('TopicTrie - a more specific earlier rule wins over a later catch-all', () => {
  assert.equal(match(trieOf('a/b', '#'), 'a/b'), 0);
  assert.equal(match(trieOf('a/b', '#'), 'a/c'), 1);
});

test('TopicTrie - the lowest index wins across literal and wildcard branches', () => {
  // Index 2 on the literal branch, index 1 on the wildcard branch: 1 wins.
  const trie = trieOf('x/y', '+/b', 'a/b', 'a/#');
  assert.equal(match(trie, 'a/b'), 1);
  assert.equal(match(trie, 'a/c'), 3);
  assert.equal(match(trie, 'x/y'), 0);
  // The literal branch holds the lower index this time.
  assert.equal(match(trieOf('a/b', '+/b'), 'a/b'), 0);
});

test('TopicTrie - rule indices need not be added in order', () => {
  const trie = new TopicTrie();
  trie.add(compilePattern('a/b', TOPIC_SYNTAX), 5);
  trie.add(compilePattern('#', TOPIC_SYNTAX), 2);
  assert.equal(trie.match(['a', 'b']), 2);
  assert.equal(trie.match(['z']), 2);
});

test('TopicTrie - the same pattern added twice keeps the lower index', () => {
  assert.equal(match(trieOf('a/+', 'a/+'), 'a/b'), 0);
  assert.equal(match(trieOf('a/#', 'a/#'), 'a'), 0);
});

test('TopicTrie - "+" matches exactly one level', () => {
  const trie = trieOf('a/+/c');
  assert.equal(match(trie, 'a/b/c'), 0);
  assert.equal(match(trie, 'a/xyz/c'), 0);
  assert.equal(match(trie, 'a/c'), -1);
  assert.equal(match(trie, 'a/b/b/c'), -1);
});

test('TopicTrie - "{name}" matches exactly one level, like "+"', () => {
  const trie = trieOf('devices/{deviceId}/status');
  assert.equal(match(trie, 'devices/d1/status'), 0);
  assert.equal(match(trie, 'devices/status'), -1);
  assert.equal(match(trie, 'devices/d1/x/status'), -1);
});

test('TopicTrie - "#" matches zero or more levels (a/# matches a)', () => {
  const trie = trieOf('a/#');
  assert.equal(match(trie, 'a'), 0);
  assert.equal(match(trie, 'a/b'), 0);
  assert.equal(match(trie, 'a/b/c/d/e'), 0);
  assert.equal(match(trie, 'b'), -1);
  assert.equal(match(trie, 'b/a'), -1);
});

test('TopicTrie - "#" alone matches every topic not starting with "$"', () => {
  const trie = trieOf('#');
  assert.equal(match(trie, 'a'), 0);
  assert.equal(match(trie, 'a/b/c'), 0);
  assert.equal(match(trie, '/'), 0);
  assert.equal(match(trie, 'a//b'), 0);
});

test('TopicTrie - "+/#" matches a single level too (zero levels under #)', () => {
  const trie = trieOf('+/#');
  assert.equal(match(trie, 'a'), 0);
  assert.equal(match(trie, 'a/b/c'), 0);
});

test('TopicTrie - empty levels: a//b is matched by a/+/b and not by a/b', () => {
  assert.equal(match(trieOf('a/+/b'), 'a//b'), 0);
  assert.equal(match(trieOf('a/{x}/b'), 'a//b'), 0);
  assert.equal(match(trieOf('a/b'), 'a//b'), -1);
  assert.equal(match(trieOf('a//b'), 'a//b'), 0);
  assert.equal(match(trieOf('a//b'), 'a/b'), -1);
});

test('TopicTrie - leading and trailing empty levels are levels', () => {
  assert.equal(match(trieOf('+/a'), '/a'), 0);
  assert.equal(match(trieOf('a/+'), 'a/'), 0);
  assert.equal(match(trieOf('a'), 'a/'), -1);
  assert.equal(match(trieOf('a/#'), 'a/'), 0);
});

test('TopicTrie - a "$" topic is not matched by a leading "#" [MQTT-4.7.2-1]', () => {
  const trie = trieOf('#');
  assert.equal(match(trie, '$SYS/broker/uptime'), -1);
  assert.equal(match(trie, '$SYS'), -1);
  assert.equal(match(trie, '$'), -1);
});

test('TopicTrie - a "$" topic is not matched by a leading "+" or "{x}" [MQTT-4.7.2-1]', () => {
  assert.equal(match(trieOf('+/x'), '$SYS/x'), -1);
  assert.equal(match(trieOf('{x}/x'), '$SYS/x'), -1);
  assert.equal(match(trieOf('+/#'), '$SYS/x'), -1);
  assert.equal(match(trieOf('+'), '$SYS'), -1);
});

test('TopicTrie - a "$" topic is matched by a literal "$SYS/#"', () => {
  const trie = trieOf('#', '$SYS/#');
  assert.equal(match(trie, '$SYS/broker/uptime'), 1);
  assert.equal(match(trie, '$SYS'), 1);
  assert.equal(match(trie, 'SYS/x'), 0);
  assert.equal(match(trieOf('$SYS/+'), '$SYS/x'), 0);
  assert.equal(match(trieOf('$SYS/x'), '$SYS/x'), 0);
});

test('TopicTrie - wildcards after a literal "$" level still match', () => {
  assert.equal(match(trieOf('$app/+/status'), '$app/d1/status'), 0);
  assert.equal(match(trieOf('$app/{id}/#'), '$app/d1'), 0);
});

test('TopicTrie - "$" only matters in the first level', () => {
  assert.equal(match(trieOf('a/+'), 'a/$x'), 0);
  assert.equal(match(trieOf('a/#'), 'a/$x/y'), 0);
  assert.equal(match(trieOf('#'), 'a$/b'), 0);
});
