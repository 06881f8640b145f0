import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { withMetricsReference } from '../../../src/observability/metrics-reference.js';
import { BridgeMetrics, METRIC_PREFIX, METRICS, WORKER_METRICS, WorkerMetrics } from '../../../src/observability/metrics.js';

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

test('docs/operations.md - its metrics reference is what the metric definitions generate (run `npm run docs`)', () => {
  const document = read('docs/operations.md');
  assert.equal(document, withMetricsReference(document));
  for (const metric of [...Object.values(METRICS), ...Object.values(WORKER_METRICS)]) assert.ok(document.includes(`\`${METRIC_PREFIX}${metric.name}\``));
});

test('metrics - the registry holds exactly the declared metrics (and the default process ones)', async () => {
  const metrics = new BridgeMetrics({ processMetrics: true });
  const names = (await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name);
  const ours = names.filter((name) => name.startsWith(METRIC_PREFIX)).sort();
  assert.deepEqual(ours, Object.values(METRICS).map((metric) => METRIC_PREFIX + metric.name).sort());
  assert.ok(names.includes('process_resident_memory_bytes'));
});

test('metrics - the primary of run --workers holds exactly the declared worker metrics, none of a bridge', async () => {
  const metrics = new WorkerMetrics(() => ({ starting: 1, running: 2, restarting: 0, stopping: 0 }));
  const json = await metrics.registry.getMetricsAsJSON();
  assert.deepEqual(json.map((metric) => metric.name).sort(), Object.values(WORKER_METRICS).map((metric) => METRIC_PREFIX + metric.name).sort());
  const workers = json.find((metric) => metric.name === `${METRIC_PREFIX}workers`)!;
  assert.deepEqual(workers.values.map(({ labels, value }) => `${String(labels.state)} ${value}`), ['starting 1', 'running 2', 'restarting 0', 'stopping 0']);
});

test('docs/grafana-dashboard.json - every query uses metrics the bridge exports, and every bridge metric is on it', async () => {
  const dashboard = JSON.parse(read('docs/grafana-dashboard.json')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
  const exported = new Set(
    [...(await new BridgeMetrics({ processMetrics: true }).registry.getMetricsAsJSON()), ...(await new WorkerMetrics(() => ({ starting: 0, running: 0, restarting: 0, stopping: 0 })).registry.getMetricsAsJSON())].map(
      (metric) => metric.name,
    ),
  );
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, `${panel.title} has queries`);
    for (const { expr } of panel.targets) {
      const names = [...expr.matchAll(/\b(mqtt_amqp_bridge_[a-z_]+|process_[a-z_]+)\b/g)].map(([name]) => name);
      assert.ok(names.length > 0, `${panel.title}: "${expr}" queries no metric of the bridge`);
      for (const name of names) {
        const base = name.replace(/_(bucket|sum|count)$/, '');
        assert.ok(exported.has(base), `${panel.title}: ${name} is not a metric of the bridge`);
        used.add(base);
      }
    }
  }
  for (const metric of [...Object.values(METRICS), ...Object.values(WORKER_METRICS)]) assert.ok(used.has(METRIC_PREFIX + metric.name), `${metric.name} is on no panel`);
});
