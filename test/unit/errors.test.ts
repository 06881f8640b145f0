import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BridgeError, ERROR_CODES } from '../../src/errors.js';

test('errors - every code in the catalogue is documented in docs/errors.md', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(BRIDGE_ERR_[A-Z_]+)` \|/gm)].map((match) => match[1]));
  assert.deepEqual([...documented].sort(), Object.keys(ERROR_CODES).sort());
});

test('errors - a BridgeError keeps its code and cause', () => {
  const cause = new Error('root');
  const error = new BridgeError('BRIDGE_ERR_LISTEN', 'cannot listen', { cause });
  assert.equal(error.code, 'BRIDGE_ERR_LISTEN');
  assert.equal(error.cause, cause);
  assert.equal(error.name, 'BridgeError');
  assert.ok(error instanceof Error);
});
