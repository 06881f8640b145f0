import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Runs `npm run -s send -- ARGS` with an AMQP_URL nothing listens on: a usage error must come first. */
async function send(args: string[]): Promise<{ code: number; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', 'scripts/amqp-send.ts', ...args], { env: { ...process.env, AMQP_URL: 'amqp://guest:guest@127.0.0.1:1' }, timeout: 30_000 }).then(
    () => assert.fail('the script accepted the arguments'),
    (error: { code: number; stderr: string }) => error,
  );
}

test('amqp-send - `--header NAME` without "=VALUE" is a usage error, as for `route --amqp`', async () => {
  const { code, stderr } = await send(['commands', 'dev-1.reboot', '{}', '--header', 'x-reason']);
  assert.equal(code, 2);
  assert.equal(stderr, '--header takes NAME=VALUE, not "x-reason"\nusage: npm run -s send -- EXCHANGE ROUTING_KEY PAYLOAD [--header NAME=VALUE ...]\n');
});

test('amqp-send - an unknown option or a missing routing key is a usage error', async () => {
  const unknown = await send(['commands', 'dev-1.reboot', '{}', '--headers', 'a=b']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /^unknown option --headers\nusage: /);
  const missing = await send(['commands']);
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, 'usage: npm run -s send -- EXCHANGE ROUTING_KEY PAYLOAD [--header NAME=VALUE ...]\n');
});
