import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter } from '../../../src/flow/rate-limiter.js';

test('RateLimiter - a burst goes at once, then one publish per 1/perSecond', () => {
  let now = 0;
  const limiter = new RateLimiter({ perSecond: 10, burst: 3, now: () => now });
  assert.deepEqual([0, 1, 2].map(() => limiter.take('a')), [0, 0, 0]);
  assert.equal(limiter.take('a'), 100, 'the fourth waits for one token');
  assert.equal(limiter.take('a'), 200, 'the fifth for two');
  now = 200;
  assert.equal(limiter.take('a'), 100, 'two tokens came back and were taken; the sixth waits again');
  assert.equal(limiter.take('b'), 0, 'clients have their own buckets');
});

test('RateLimiter - tryTake takes a token only when one is free', () => {
  let now = 0;
  const limiter = new RateLimiter({ perSecond: 2, burst: 1, now: () => now });
  assert.equal(limiter.tryTake('a'), true);
  assert.equal(limiter.tryTake('a'), false);
  assert.equal(limiter.tryTake('a'), false);
  now = 500;
  assert.equal(limiter.tryTake('a'), true, 'half a second gives one token back, not more');
  assert.equal(limiter.tryTake('a'), false);
});
