import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageIds } from '../../../src/util/message-ids.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('MessageIds - every id is a version 4 UUID, distinct across many batches', () => {
  const { newId } = new MessageIds();
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) {
    const id = newId();
    assert.match(id, UUID_V4);
    seen.add(id);
  }
  assert.equal(seen.size, 10_000);
});

test('MessageIds - the random bits are spread: each hex digit outside the fixed ones is about equally common', () => {
  const { newId } = new MessageIds();
  const counts = new Map<string, number>();
  const ids = 4_000;
  for (let i = 0; i < ids; i++) {
    const digits = newId().replaceAll('-', '');
    for (let d = 0; d < 32; d++) {
      if (d === 12 || d === 16) continue; // the version, and the variant that takes only 8-b
      counts.set(digits[d]!, (counts.get(digits[d]!) ?? 0) + 1);
    }
  }
  const expected = (ids * 30) / 16;
  assert.equal(counts.size, 16);
  for (const [digit, count] of counts) assert.ok(Math.abs(count - expected) < expected * 0.1, `digit ${digit}: ${count} of about ${expected}`);
});
