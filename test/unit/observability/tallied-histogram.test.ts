import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Histogram, Registry, type RegistryContentType } from 'prom-client';
import { TalliedHistogram } from '../../../src/observability/tallied-histogram.js';

const BOUNDS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HELP = 'Time from writing a publish to RabbitMQ to its confirm.';

/** The same observations into prom-client's Histogram and into a TalliedHistogram, each in a registry of its own. */
function both(observations: readonly number[], contentType: RegistryContentType = Registry.PROMETHEUS_CONTENT_TYPE) {
  const reference = new Registry<RegistryContentType>();
  const tallied = new Registry<RegistryContentType>();
  reference.setContentType(contentType);
  tallied.setContentType(contentType);
  const histogram = new Histogram({ name: 'latency_seconds', help: HELP, buckets: [...BOUNDS], registers: [reference] });
  const ours = new TalliedHistogram('latency_seconds', HELP, BOUNDS, tallied);
  for (const value of observations) {
    histogram.observe(value);
    ours.observe(value);
  }
  return { reference, tallied, histogram, ours };
}

function observations(): number[] {
  let seed = 11;
  const values = [0, 0.0005, 0.001, 10, 10.5, 1e6, ...BOUNDS];
  for (let i = 0; i < 2_000; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    values.push((seed / 2 ** 31) ** 4 * 12);
  }
  return values;
}

test('TalliedHistogram - the text a scrape reads is the same as prom-client\'s Histogram gives for the same observations', async () => {
  const { reference, tallied } = both(observations());
  const text = await tallied.metrics();
  assert.equal(text, await reference.metrics());
  assert.match(text, /^latency_seconds_bucket\{le="0\.0005"\} 160$/m);
  assert.match(text, /^latency_seconds_count 2020$/m);
});

test('TalliedHistogram - with nothing observed it shows every bucket at 0, as prom-client does', async () => {
  const { reference, tallied } = both([]);
  assert.equal(await tallied.metrics(), await reference.metrics());
  assert.match(await tallied.metrics(), /^latency_seconds_bucket\{le="\+Inf"\} 0$/m);
});

test('TalliedHistogram - JSON, OpenMetrics and the workers\' aggregation are the same as prom-client\'s', async () => {
  const first = both(observations());
  const second = both([0.003, 20]);
  const json = async (registry: Registry<RegistryContentType>) => JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as unknown;
  assert.deepEqual(await json(first.tallied), await json(first.reference));
  const sum = async (a: Registry<RegistryContentType>, b: Registry<RegistryContentType>) => AggregatorRegistry.aggregate([await a.getMetricsAsJSON(), await b.getMetricsAsJSON()] as never).metrics();
  assert.equal(await sum(first.tallied, second.tallied), await sum(first.reference, second.reference));
  const openMetrics = both(observations(), Registry.OPENMETRICS_CONTENT_TYPE);
  assert.equal(await openMetrics.tallied.metrics(), await openMetrics.reference.metrics());
  assert.match(await openMetrics.tallied.metrics(), /# EOF\n$/);
});

test('TalliedHistogram - resetMetrics clears it; a value that is not a number is refused and counts nothing', async () => {
  const { reference, tallied, histogram, ours } = both(observations());
  tallied.resetMetrics();
  reference.resetMetrics();
  ours.observe(0.002);
  histogram.observe(0.002);
  assert.equal(await tallied.metrics(), await reference.metrics());
  assert.throws(() => ours.observe(Number.NaN), { code: 'BRIDGE_ERR_INTERNAL' });
  assert.throws(() => ours.observe(Number.POSITIVE_INFINITY), { code: 'BRIDGE_ERR_INTERNAL' });
  assert.match(await tallied.metrics(), /^latency_seconds_count 1$/m);
});
