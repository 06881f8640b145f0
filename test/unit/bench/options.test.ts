import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBenchOptions } from '../../../bench/lib/options.js';
import { UsageError } from '../../../src/errors.js';

const SCENARIOS = [{ name: 'ceiling' }, { name: 'uplink-qos1' }, { name: 'connections' }];

test('bench options - every scenario, 3 runs, by default; 1 run with --quick', () => {
  assert.deepEqual(parseBenchOptions([], SCENARIOS), { scenarios: SCENARIOS, quick: false, repeats: 3, compare: null, amqp10: false });
  assert.equal(parseBenchOptions(['--amqp10'], SCENARIOS).amqp10, true);
  assert.deepEqual(parseBenchOptions(['--quick'], SCENARIOS), { scenarios: SCENARIOS, quick: true, repeats: 1, compare: null, amqp10: false });
});

test('bench options - --scenario takes a comma-separated list, --repeat and --compare a value', () => {
  const options = parseBenchOptions(['--scenario', 'connections,ceiling', '--repeat', '5', '--compare=mqtt://127.0.0.1:1883'], SCENARIOS);
  assert.deepEqual(options.scenarios.map((scenario) => scenario.name), ['ceiling', 'connections']);
  assert.equal(options.repeats, 5);
  assert.equal(options.compare, 'mqtt://127.0.0.1:1883');
});

test('bench options - an unknown option is a usage error, not silently ignored', () => {
  assert.throws(() => parseBenchOptions(['--quik'], SCENARIOS), { name: UsageError.name, message: 'unknown option --quik' });
  assert.throws(() => parseBenchOptions(['quick'], SCENARIOS), { name: UsageError.name, message: 'unexpected argument "quick"' });
});

test('bench options - --repeat must be a positive integer', () => {
  for (const repeat of ['x', '0', '-1', '2.5', '']) {
    assert.throws(() => parseBenchOptions(['--repeat', repeat], SCENARIOS), { name: UsageError.name, message: `--repeat takes a positive integer, not "${repeat}"` });
  }
});

test('bench options - an unknown scenario, even beside a known one, is a usage error naming the scenarios', () => {
  assert.throws(() => parseBenchOptions(['--scenario', 'uplink-qos1,uplink-qos9'], SCENARIOS), {
    name: UsageError.name,
    message: 'no scenario "uplink-qos9"; there are: ceiling, uplink-qos1, connections',
  });
});
