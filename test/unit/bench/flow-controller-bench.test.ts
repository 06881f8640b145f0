import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

// Keeps the flow controller's micro benchmark working; it checks what it prints, never the speed.
test('bench - `bench/flow-controller.ts --quick` drives every publish through and prints one JSON line', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/flow-controller.ts', '--quick'], { timeout: 60_000 });
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1);
  const result = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.deepEqual(Object.keys(result), ['bench', 'module', 'publishes', 'nsPerPublish', 'runs']);
  assert.equal(result.module, 'src/flow/flow-controller.ts');
  assert.equal(result.publishes, 100_000);
  assert.ok(typeof result.nsPerPublish === 'number' && result.nsPerPublish > 0);
  assert.equal((result.runs as number[]).length, 5);
});
