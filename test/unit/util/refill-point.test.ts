import assert from 'node:assert/strict';
import { test } from 'node:test';
import { refillPoint } from '../../../src/util/refill-point.js';

test('refillPoint - a quarter of the limit settled first; any release under 4', () => {
  assert.equal(refillPoint(100), 75);
  assert.equal(refillPoint(1024), 768);
  assert.equal(refillPoint(8), 6);
  assert.equal(refillPoint(5), 4);
  for (const limit of [1, 2, 3]) assert.equal(refillPoint(limit), limit);
});
