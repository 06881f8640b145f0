import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { REPOSITORY_ROOT, sourceFiles } from '../helpers/source-files.js';

/** The dependency rules of docs/architecture.md ("Folders, and what each may import"). */

const SRC = join(REPOSITORY_ROOT, 'src');

interface Import {
  /** The importing file, relative to src/. */
  readonly from: string;
  /** What it imports: a path relative to src/ (without extension), or a package name. */
  readonly target: string;
  readonly typeOnly: boolean;
  /** A file of this repository (a relative import), not a package. */
  readonly local: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const from = relative(SRC, file);
  const found: Import[] = [];
  for (const match of text.matchAll(/^(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gm)) {
    const specifier = match[3] ?? match[4]!;
    const names = match[2] ?? '';
    const braces = /^\{([^}]*)\}$/.exec(names.trim());
    const allTypes = braces !== null && braces[1]!.split(',').filter((name) => name.trim()).every((name) => /^\s*type\s/.test(name));
    const target = specifier.startsWith('.') ? relative(SRC, resolve(dirname(file), specifier)).replace(/\.js$/, '') : specifier;
    found.push({ from, target, typeOnly: match[1] !== undefined || allTypes, local: specifier.startsWith('.') });
  }
  return found;
}

const IMPORTS = sourceFiles(SRC).flatMap(importsOf);
const inFolder = (path: string, folder: string) => path.startsWith(`${folder}/`);
const show = (found: Import[]) => found.map((i) => `${i.from} -> ${i.target}${i.typeOnly ? ' (type)' : ''}`);

test('architecture - the import scan sees the imports (it finds what bridge.ts and bridge-parts.ts import)', () => {
  const ofBridge = IMPORTS.filter((i) => i.from === 'bridge.ts' || i.from === 'bridge-parts.ts').map((i) => i.target);
  for (const expected of ['mqtt/server', 'amqp/backend', 'pipeline/uplink', 'pino']) assert.ok(ofBridge.includes(expected), expected);
  assert.ok(IMPORTS.some((i) => i.typeOnly) && IMPORTS.some((i) => !i.typeOnly));
});

test('architecture - mapping/ is pure: it imports nothing but errors.ts, protocol/ and itself', () => {
  const outside = IMPORTS.filter((i) => inFolder(i.from, 'mapping') && !inFolder(i.target, 'mapping') && !inFolder(i.target, 'protocol') && i.target !== 'errors');
  assert.deepEqual(show(outside), []);
});

test('architecture - protocol/ (what MQTT itself says) imports nothing', () => {
  assert.deepEqual(show(IMPORTS.filter((i) => inFolder(i.from, 'protocol') && !inFolder(i.target, 'protocol'))), []);
});

/** The folder (or top-level file) of a path relative to src/: `mqtt/hooks/x` -> `mqtt`, `bridge` -> `bridge`. */
const unitOf = (path: string) => path.split('/')[0]!.replace(/\.ts$/, '');

test('architecture - no two folders depend on each other, directly or around a cycle (types included)', () => {
  const edges = new Map<string, Set<string>>();
  for (const i of IMPORTS.filter((i) => i.local && unitOf(i.from) !== unitOf(i.target))) {
    if (!edges.has(unitOf(i.from))) edges.set(unitOf(i.from), new Set());
    edges.get(unitOf(i.from))!.add(unitOf(i.target));
  }
  const cycles: string[] = [];
  const visit = (unit: string, path: string[]) => {
    for (const next of edges.get(unit) ?? []) {
      if (next === path[0]) cycles.push([...path, next].join(' -> '));
      // Each cycle is reported once, from its smallest unit.
      else if (!path.includes(next) && next > path[0]!) visit(next, [...path, next]);
    }
  };
  for (const unit of edges.keys()) visit(unit, [unit]);
  assert.deepEqual(cycles, []);
  assert.ok(edges.get('config')?.has('auth') && edges.get('mqtt')?.has('config'), 'the scan sees folder dependencies');
});
const BROKER_SIDES = ['amqp', 'amqp10'];
const onBrokerSide = (path: string) => BROKER_SIDES.some((folder) => inFolder(path, folder));

test('architecture - mqtt/ never imports amqp/ or amqp10/, and neither of them imports mqtt/', () => {
  const crossing = IMPORTS.filter((i) => (inFolder(i.from, 'mqtt') && onBrokerSide(i.target)) || (onBrokerSide(i.from) && inFolder(i.target, 'mqtt')));
  assert.deepEqual(show(crossing), []);
});

test('architecture - amqp/ (AMQP 0-9-1) never imports amqp10/; only bridge-parts.ts picks between them', () => {
  assert.deepEqual(show(IMPORTS.filter((i) => inFolder(i.from, 'amqp') && inFolder(i.target, 'amqp10'))), []);
  const pickers = IMPORTS.filter((i) => inFolder(i.target, 'amqp10') && !inFolder(i.from, 'amqp10')).map((i) => i.from);
  assert.deepEqual([...new Set(pickers)], ['bridge-parts.ts']);
});

test('architecture - rhea is loaded at run time only by amqp10/ (its internals only in rhea-internals.ts: see docs/architecture.md)', () => {
  const loaders = IMPORTS.filter((i) => i.target === 'rhea' && !i.typeOnly).map((i) => i.from);
  assert.ok(loaders.length > 0, 'the scan sees rhea');
  assert.deepEqual(loaders.filter((from) => !inFolder(from, 'amqp10')), []);
});

test('architecture - pipeline/ and flow/ take only types from mqtt/, amqp/ and amqp10/ (they work through the ports)', () => {
  const code = IMPORTS.filter((i) => (inFolder(i.from, 'pipeline') || inFolder(i.from, 'flow')) && (inFolder(i.target, 'mqtt') || onBrokerSide(i.target)) && !i.typeOnly);
  assert.deepEqual(show(code), []);
});

test('architecture - nothing outside cli/ imports cli/', () => {
  assert.deepEqual(show(IMPORTS.filter((i) => inFolder(i.target, 'cli') && !inFolder(i.from, 'cli'))), []);
});
