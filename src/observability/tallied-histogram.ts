import type { Metric, Registry, RegistryContentType } from 'prom-client';
import { BridgeError } from '../errors.js';

interface HistogramValue {
  readonly labels: { le?: number | '+Inf' };
  readonly value: number;
  readonly metricName: string;
  /** prom-client's histogram buckets carry one (null without exemplars); the sum and count do not. */
  readonly exemplar?: null;
}

/**
 * A histogram without labels that counts in a plain array and builds prom-client's histogram
 * output only when read. prom-client's own Histogram hashes its labels, validates them and looks
 * the series up on every observe (about 200 ns); this one observes in about 35 ns, which matters
 * for the confirm latency, observed once per uplink message (docs/performance.md).
 *
 * prom-client's registry reads a metric through `get()` (text and JSON alike, and the workers'
 * aggregation through `aggregator`) and clears it through `reset()`; this class gives those, in
 * the shape prom-client's Histogram gives them (test/unit/observability/tallied-histogram.test.ts
 * compares the two outputs).
 */
export class TalliedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** Observations per bucket, the last one for those above every bound. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
    registry: Registry<RegistryContentType>,
  ) {
    this.counts = new Float64Array(upperBounds.length + 1);
    // The registry holds any object it can call get() and reset() on; its types list only its own classes.
    registry.registerMetric(this as unknown as Metric);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new BridgeError('BRIDGE_ERR_INTERNAL', `${this.name} observed ${value}, not a finite number`);
    const bounds = this.upperBounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    this.counts[bucket]!++;
    this.sum += value;
    this.count++;
  }

  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramValue[] }> {
    const bucketName = `${this.name}_bucket`;
    const values: HistogramValue[] = [];
    let cumulative = 0;
    this.upperBounds.forEach((le, bucket) => {
      cumulative += this.counts[bucket]!;
      values.push({ labels: { le }, value: cumulative, metricName: bucketName, exemplar: null });
    });
    values.push(
      { labels: { le: '+Inf' }, value: this.count, metricName: bucketName, exemplar: null },
      { labels: {}, value: this.sum, metricName: `${this.name}_sum` },
      { labels: {}, value: this.count, metricName: `${this.name}_count` },
    );
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}
