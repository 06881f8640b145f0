import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

// Keeps the benchmark harness working; it checks the shape of what it prints, never the speed.
test('bench - `npm run bench -- --quick --scenario uplink-qos1` prints a JSON line and the Markdown table', async () => {
  const { stdout } = await run('npm', ['run', '-s', 'bench', '--', '--quick', '--scenario', 'uplink-qos1'], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  const lines = stdout.split('\n');
  const result = lines.filter((line) => line.startsWith('{"scenario"')).map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(result.length, 1);
  const figures = result[0]!;
  assert.deepEqual(Object.keys(figures), ['scenario', 'target', 'messages', 'runs', 'msgsPerSecond', 'bridgeCpuUsPerMsg', 'rabbitCpuUsPerMsg', 'lost', 'duplicated', 'rabbitResourceAlarms']);
  assert.equal(figures.scenario, 'uplink-qos1');
  assert.equal(figures.target, 'bridge');
  assert.equal(figures.messages, 20_000);
  assert.equal(figures.lost, 0, 'the harness checks for lost messages');
  assert.equal(figures.duplicated, 0);
  assert.equal(typeof figures.msgsPerSecond, 'number');
  assert.ok(lines.includes('| scenario | target | figures |'), 'the Markdown table');
  assert.ok(lines.some((line) => line.startsWith('| uplink-qos1 | bridge | messages 20,000, runs 1, msgsPerSecond ')));
});

// The delivery latency is the time from the load generator's stamp to the consumer's arrival,
// read in two processes: with a per-process clock it once came out as 0.001 ms at every
// percentile. A hop through the bridge and RabbitMQ takes more than 50 us and less than 10 s.
test('bench - `--quick --scenario latency`: delivery and PUBACK latencies are real durations, at every rate', async () => {
  const { stdout } = await run('npm', ['run', '-s', 'bench', '--', '--quick', '--scenario', 'latency'], { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
  const results = stdout
    .split('\n')
    .filter((line) => line.startsWith('{"scenario"'))
    .map((line) => JSON.parse(line) as { scenario: string; deliveryMs: Record<string, number>; pubackMs: Record<string, number>; lost: number });
  assert.deepEqual(results.map((result) => result.scenario), ['latency-500', 'latency-2000', 'latency-8000']);
  for (const result of results) {
    for (const [kind, figures] of [['delivery', result.deliveryMs], ['PUBACK', result.pubackMs]] as const) {
      for (const [percentile, ms] of Object.entries(figures)) assert.ok(ms > 0.05 && ms < 10_000, `${result.scenario} ${kind} ${percentile}: ${ms} ms`);
      assert.ok(figures.p50! <= figures.p99! && figures.p99! <= figures.max!, `${result.scenario} ${kind}: ${JSON.stringify(figures)}`);
    }
    assert.equal(result.lost, 0);
  }
});

// The scenario and --quick are given too, so that a bench that ignored the bad option would run
// one short scenario (and this test would fail on its exit code), never the whole suite.
for (const [bad, message] of [
  [['--quik'], 'bench: unknown option --quik'],
  [['--repeat', 'x'], 'bench: --repeat takes a positive integer, not "x"'],
] as const) {
  test(`bench - \`${bad.join(' ')}\` exits 2 with a usage error and measures nothing`, async () => {
    const failure = await run('npm', ['run', '-s', 'bench', '--', ...bad, '--quick', '--scenario', 'uplink-qos1'], { timeout: 120_000 }).then(
      () => assert.fail('the bench accepted the bad option'),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    assert.equal(failure.code, 2);
    assert.ok(failure.stderr.startsWith(`${message}\nusage: npm run bench -- `), failure.stderr);
    assert.equal(failure.stdout, '', 'no figures');
  });
}
