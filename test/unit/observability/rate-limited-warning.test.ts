import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimitedWarning } from '../../../src/observability/rate-limited-warning.js';
import { captureLogs } from '../../helpers/log-capture.js';

const capture = () => captureLogs('warn');

test('RateLimitedWarning - warns once per key', () => {
  const { lines, logger } = capture();
  const warning = new RateLimitedWarning({ logger, message: 'unmatched' });
  warning.warn('a/b', { topic: 'a/b' });
  warning.warn('a/b', { topic: 'a/b' });
  warning.warn('c', { topic: 'c' });
  assert.deepEqual(lines.map((line) => [line.msg, line.topic, line.level]), [
    ['unmatched', 'a/b', 40],
    ['unmatched', 'c', 40],
  ]);
});

test('RateLimitedWarning - at most perWindow lines per window; the next line says how many were held back', () => {
  const { lines, logger } = capture();
  let now = 0;
  const warning = new RateLimitedWarning({ logger, message: 'm', perWindow: 2, windowMs: 1_000, now: () => now });
  for (let i = 0; i < 5; i++) warning.warn(`k${i}`, { i });
  assert.deepEqual(lines.map((line) => line.i), [0, 1]);
  now = 1_000;
  warning.warn('k9', { i: 9 });
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.i, 9);
  assert.equal(lines[2]!.suppressed, 3);
});

test('RateLimitedWarning - a null key is only rate-limited, never remembered', () => {
  const { lines, logger } = capture();
  const warning = new RateLimitedWarning({ logger, message: 'm', perWindow: 10 });
  warning.warn(null, { n: 1 });
  warning.warn(null, { n: 2 });
  assert.deepEqual(lines.map((line) => line.n), [1, 2]);
});

test('RateLimitedWarning - the memory of keys is bounded', () => {
  const { lines, logger } = capture();
  const warning = new RateLimitedWarning({ logger, message: 'm', maxKeys: 2, perWindow: 100 });
  ['a', 'b', 'c', 'a'].forEach((key) => warning.warn(key, { key }));
  assert.deepEqual(lines.map((line) => line.key), ['a', 'b', 'c', 'a']);
});
