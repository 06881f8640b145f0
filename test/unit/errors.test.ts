import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { BridgeError, ERROR_CODES, packetNotFound } from '../../src/errors.js';
import { REPOSITORY_ROOT as ROOT, sourceFiles } from '../helpers/source-files.js';

/** The rows of docs/errors.md's table: code and the text of each of its columns. */
function documentedRows(): Map<string, string[]> {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const match = /^\| `(BRIDGE_ERR_[A-Z0-9_]+)` \|(.*)\|\s*$/.exec(line);
    if (!match) continue;
    assert.ok(!rows.has(match[1]!), `${match[1]} is documented twice`);
    rows.set(match[1]!, match[2]!.split(/(?<!\\)\|/).map((cell) => cell.trim()));
  }
  return rows;
}

test('errors - every code in the catalogue is documented in docs/errors.md, and every code documented is in the catalogue', () => {
  const documented = [...documentedRows().keys()];
  const catalogue = Object.keys(ERROR_CODES);
  assert.deepEqual(catalogue.filter((code) => !documented.includes(code)), [], 'in src/errors.ts, not in docs/errors.md');
  assert.deepEqual(documented.filter((code) => !catalogue.includes(code)), [], 'in docs/errors.md, not in src/errors.ts');
});

test("errors - each documented code's row says where, what happened and what to do", () => {
  for (const [code, cells] of documentedRows()) {
    assert.equal(cells.length, 3, `${code}: the row has ${cells.length + 1} columns instead of 4`);
    cells.forEach((cell, index) => assert.ok(cell.length > 0, `${code}: column ${['Where', 'What happened', 'What to do'][index]} is empty`));
  }
  for (const [code, summary] of Object.entries(ERROR_CODES)) assert.ok(summary.length > 0, `${code} has no summary in src/errors.ts`);
});

test('errors - nothing under src/ throws or passes on a plain Error: every error the bridge raises has a code', () => {
  const plain: string[] = [];
  for (const file of sourceFiles(join(ROOT, 'src'))) {
    const path = relative(ROOT, file);
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, index) => {
        if (/\bnew (Type|Range|Syntax)?Error\(|\bthrow (Type|Range|Syntax)?Error\(|\bthrow ['"`]/.test(line)) plain.push(`${path}:${index + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(plain, [], 'use a coded error of src/errors.ts (BridgeError or a subclass)');
});

test('errors - a BridgeError keeps its code and cause', () => {
  const cause = new Error('root');
  const error = new BridgeError('BRIDGE_ERR_LISTEN', 'cannot listen', { cause });
  assert.equal(error.code, 'BRIDGE_ERR_LISTEN');
  assert.equal(error.cause, cause);
  assert.equal(error.name, 'BridgeError');
  assert.ok(error instanceof Error);
});

test('errors - packetNotFound is the coded answer for a packet id not held, made without a stack trace, and leaves the stack limit as it was', () => {
  const before = Error.stackTraceLimit;
  const error = packetNotFound();
  assert.ok(error instanceof BridgeError);
  assert.equal(error.code, 'BRIDGE_ERR_PACKET_NOT_FOUND');
  assert.equal(error.message, 'no such packet');
  assert.equal(error.stack, 'BridgeError: no such packet', 'no frames captured');
  assert.equal(Error.stackTraceLimit, before);
  assert.match(new Error('other').stack ?? '', /\n\s+at /, 'other errors still get their frames');
});
