import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { benchClockMs } from '../../../bench/lib/clock.js';

const run = promisify(execFile);

test('bench clock - a time read in another process lies between two read here: the load generator and the consumer compare their stamps', async () => {
  const before = benchClockMs();
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', "import { benchClockMs } from './bench/lib/clock.ts'; console.log(benchClockMs());"]);
  const after = benchClockMs();
  const child = Number(stdout.trim());
  assert.ok(before <= child && child <= after, `${before} <= ${child} <= ${after}`);
});

test('bench clock - no bench code stamps times with the per-process clock (performance.timeOrigin), which put every delivery latency at 0.001 ms', () => {
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? files(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []));
  const offenders = files('bench').filter((file) => file !== join('bench', 'lib', 'clock.ts') && readFileSync(file, 'utf8').includes('timeOrigin'));
  assert.deepEqual(offenders, []);
});
