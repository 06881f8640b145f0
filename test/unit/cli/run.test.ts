import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { RUN_USAGE } from '../../../src/cli/run.js';
import { runCli } from '../../helpers/cli.js';

const USAGE_LINE = `usage:\n  ${RUN_USAGE}\n`;

test('run - --workers takes a whole number from 1 to 256; anything else is a usage error (exit 2)', async () => {
  for (const value of ['0', '257', 'abc', '1.5', '-1', '2x', '']) {
    const result = await runCli(['run', '--config', 'config/bridge.yaml', '--workers', value]);
    assert.equal(result.code, 2, value);
    assert.equal(result.stdout, '');
    assert.ok(result.stderr.startsWith(`--workers takes a whole number from 1 to 256, not "${value}"\n${USAGE_LINE}`), result.stderr);
  }
  const missing = await runCli(['run', '--config', 'config/bridge.yaml', '--workers']);
  assert.equal(missing.code, 2);
  assert.ok(missing.stderr.startsWith(`option --workers needs a value\n${USAGE_LINE}`), missing.stderr);
});

test('run - --workers N (N > 1) without Redis persistence is a usage error naming the setting, and starts nothing', async () => {
  for (const argv of [['--workers', '2'], ['--workers=3'], ['-w', '2']]) {
    const result = await runCli(['run', '--config', 'config/bridge.yaml', ...argv], { MQTT_PORT: '1' });
    assert.equal(result.code, 2, argv.join(' '));
    assert.equal(result.stdout, '');
    const count = argv.join(' ').includes('3') ? 3 : 2;
    assert.ok(
      result.stderr.startsWith(
        `--workers ${count} needs mqtt.persistence.type: redis in config/bridge.yaml: workers are one MQTT server only when they share sessions, subscriptions and retained messages through Redis (with memory, each would be a server of its own)\n${USAGE_LINE}`,
      ),
      result.stderr,
    );
  }
});

test('run - with --workers an invalid configuration is reported as without it: exit 1, every problem as FILE:LINE:COL', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'run-workers-')), 'bad.yaml');
  writeFileSync(file, 'mqtt:\n  persistence: { type: redis, url: "http://nope" }\n');
  const result = await runCli(['run', '--config', file, '--workers', '2']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, new RegExp(`^${file}:2:\\d+: .*Redis URL`));
});

test('run - the usage names --workers', async () => {
  const result = await runCli(['run']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /mqtt-amqp-bridge run --config FILE \[--workers N\] \[--pretty\] \[--watch\]/);
});
