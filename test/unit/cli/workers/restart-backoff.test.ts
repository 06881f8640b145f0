import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_RESTART_POLICY, RestartBackoff, WORKER_RESTART_INITIAL_DELAY_MS, WORKER_RESTART_MAX_DELAY_MS, WORKER_STABLE_AFTER_MS } from '../../../../src/cli/workers/restart-backoff.js';

test('RestartBackoff - a worker that keeps dying quickly waits twice as long each time, up to the maximum', () => {
  const backoff = new RestartBackoff({ initialDelayMs: 100, maxDelayMs: 1_000, stableAfterMs: 10_000 });
  assert.deepEqual(
    Array.from({ length: 7 }, () => backoff.delayAfterDeath(50)),
    [100, 200, 400, 800, 1_000, 1_000, 1_000],
  );
});

test('RestartBackoff - a death after a stable run starts over from the initial delay', () => {
  const backoff = new RestartBackoff({ initialDelayMs: 100, maxDelayMs: 1_000, stableAfterMs: 10_000 });
  backoff.delayAfterDeath(0);
  backoff.delayAfterDeath(0);
  assert.equal(backoff.delayAfterDeath(9_999), 400, 'just short of stable: still quick deaths');
  assert.equal(backoff.delayAfterDeath(10_000), 100);
  assert.equal(backoff.delayAfterDeath(5), 200);
});

test('RestartBackoff - the defaults: half a second, at most 30 s, stable after a minute', () => {
  assert.deepEqual(DEFAULT_RESTART_POLICY, { initialDelayMs: WORKER_RESTART_INITIAL_DELAY_MS, maxDelayMs: WORKER_RESTART_MAX_DELAY_MS, stableAfterMs: WORKER_STABLE_AFTER_MS });
  assert.deepEqual([WORKER_RESTART_INITIAL_DELAY_MS, WORKER_RESTART_MAX_DELAY_MS, WORKER_STABLE_AFTER_MS], [500, 30_000, 60_000]);
  assert.equal(new RestartBackoff().delayAfterDeath(0), 500);
});
