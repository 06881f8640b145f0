import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../helpers/amqp.js';

test('waitFor (test helper) - a timed-out wait reports what its description says at the end, not at the start', async () => {
  const arrived: number[] = [];
  const arriving = setInterval(() => arrived.push(arrived.length), 5);
  try {
    await assert.rejects(
      waitFor(() => false, () => `nothing (have ${arrived.length})`, 100),
      (error: Error) => {
        const reported = Number(/have (\d+)\)$/.exec(error.message)?.[1]);
        assert.ok(reported > 0 && reported === arrived.length, `reported ${reported}, had ${arrived.length} at the end`);
        return true;
      },
    );
  } finally {
    clearInterval(arriving);
  }
});
