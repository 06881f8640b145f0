import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  levelToWord,
  routingKeyToTopic,
  swapDotsAndSlashes,
  topicToRoutingKey,
  wordToLevel,
} from '../../../src/mapping/encoding.js';

test('swapDotsAndSlashes - turns every "." into "/" and every "/" into "."', () => {
  assert.equal(swapDotsAndSlashes('a.b/c'), 'a/b.c');
  assert.equal(swapDotsAndSlashes('./'), '/.');
  assert.equal(swapDotsAndSlashes('..//'), '//..');
});

test('swapDotsAndSlashes - leaves a value without "." or "/" unchanged', () => {
  assert.equal(swapDotsAndSlashes('sensor-1_temp'), 'sensor-1_temp');
  assert.equal(swapDotsAndSlashes(''), '');
  assert.equal(swapDotsAndSlashes('ünïcødé €'), 'ünïcødé €');
});

test('swapDotsAndSlashes - leaves every other character, including non-ASCII and wildcards, in place', () => {
  assert.equal(swapDotsAndSlashes('é.ü/€+#*$ '), 'é/ü.€+#*$ ');
  assert.equal(swapDotsAndSlashes('😀/😀.😀'), '😀.😀/😀');
});

test('topicToRoutingKey - a topic without dots gives the RabbitMQ MQTT plugin key (a/b/c -> a.b.c)', () => {
  assert.equal(topicToRoutingKey('a/b/c'), 'a.b.c');
  assert.equal(topicToRoutingKey('devices/d1/telemetry'), 'devices.d1.telemetry');
  assert.equal(topicToRoutingKey('single'), 'single');
});

test('topicToRoutingKey - empty levels become empty words', () => {
  assert.equal(topicToRoutingKey('a//b'), 'a..b');
  assert.equal(topicToRoutingKey('/a'), '.a');
  assert.equal(topicToRoutingKey('a/'), 'a.');
  assert.equal(topicToRoutingKey('/'), '.');
});

test('levelToWord - a level with dots stays one word (room.1 -> room/1)', () => {
  assert.equal(levelToWord('room.1'), 'room/1');
  assert.equal(levelToWord('a.b.c').split('.').length, 1);
});

test('topicToRoutingKey - dots inside levels do not split words (a/room.1/t -> a.room/1.t)', () => {
  const key = topicToRoutingKey('a/room.1/t');
  assert.equal(key, 'a.room/1.t');
  assert.deepEqual(key.split('.'), ['a', 'room/1', 't']);
});

test('wordToLevel - a word with a slash becomes a level with a dot (room/1 -> room.1)', () => {
  assert.equal(wordToLevel('room/1'), 'room.1');
  assert.equal(wordToLevel('reboot'), 'reboot');
});

test('routingKeyToTopic - a routing key becomes a topic by the reverse swap', () => {
  assert.equal(routingKeyToTopic('a.b.c'), 'a/b/c');
  assert.equal(routingKeyToTopic('d1.room/1'), 'd1/room.1');
  assert.equal(routingKeyToTopic('a..b'), 'a//b');
});

test('encoding - topic -> routing key -> topic is lossless', () => {
  for (const topic of ['a/b/c', 'a//b', '/', '', 'room.1/t.2', '.../...', 'x.y.z', 'a/b.c/d', '$SYS/broker/uptime', 'é/ü.€']) {
    assert.equal(routingKeyToTopic(topicToRoutingKey(topic)), topic, topic);
  }
});

test('encoding - routing key -> topic -> routing key is lossless', () => {
  for (const key of ['a.b.c', 'a..b', '.', '', 'room/1.t/2', '///...', 'x/y/z', 'd1.room/1.cmd']) {
    assert.equal(topicToRoutingKey(routingKeyToTopic(key)), key, key);
  }
});

test('encoding - level -> word -> level is lossless, word by word too', () => {
  for (const level of ['room.1', 'a/b', 'plain', '', '.', '/', '.a/b.']) {
    assert.equal(wordToLevel(levelToWord(level)), level, level);
  }
});

test('encoding - encoding each level then joining with "." equals encoding the whole topic', () => {
  for (const topic of ['a/b/c', 'devices/d.1/telemetry/room.1/t', 'a//b', 'x.y']) {
    assert.equal(topic.split('/').map(levelToWord).join('.'), topicToRoutingKey(topic), topic);
  }
});

test('swapDotsAndSlashes - ASCII, non-ASCII and values longer than 256 characters give what a character-by-character swap gives', () => {
  const byCharacter = (value: string) => [...value].map((char) => (char === '.' ? '/' : char === '/' ? '.' : char)).join('');
  const alphabet = ['a', 'Z', '0', '.', '/', '-', '#', '+', ' ', '\u007f', 'é', '€', '😀'];
  let seed = 7;
  const random = (below: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % below;
  };
  const values = ['a.'.repeat(128), 'a/'.repeat(128) + 'b', `${'x/'.repeat(200)}é`, '/'.repeat(256), '.'.repeat(257)];
  for (let n = 0; n < 500; n++) {
    const asciiOnly = n % 2 === 0;
    const length = random(n % 50 === 0 ? 400 : 40);
    let value = '';
    for (let i = 0; i < length; i++) value += alphabet[random(asciiOnly ? 10 : alphabet.length)];
    values.push(value);
  }
  for (const value of values) assert.equal(swapDotsAndSlashes(value), byCharacter(value), value);
});

test('swapDotsAndSlashes - a result stays what it was after later swaps, and a shorter value after a longer one is only itself', () => {
  const first = swapDotsAndSlashes('a/b/c');
  swapDotsAndSlashes('x.y.z/longer/than/the/first');
  assert.equal(first, 'a.b.c');
  assert.equal(swapDotsAndSlashes('x.y'), 'x/y');
});
