/**
 * Benchmarks: `npm run bench -- [--scenario NAME[,NAME]] [--quick] [--repeat N] [--compare mqtt://HOST:PORT]`.
 *
 * Builds the bridge, starts it as its own process on a free port with the mapping of RabbitMQ's
 * MQTT plugin (`#` -> amq.topic, `{#}`), generates load with the `mqtt` package from a separate
 * load process, consumes on AMQP with amqplib, and prints one JSON line per scenario, then a
 * Markdown table (`--amqp10`: the uplink scenarios also through a bridge speaking AMQP 1.0 to the
 * same RabbitMQ). Throughput figures are medians of repeated runs, and every uplink figure is
 * also a ratio to the direct-AMQP ceiling measured in the same run. Speed is never asserted.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { externalEndpoint, startBridge, type RunningBridge } from './lib/bridge.js';
import { LATENCY_CHART_TITLE, latencyChart, latencyPoints } from './lib/chart.js';
import type { BenchContext, ScenarioResult } from './lib/context.js';
import { LoadGenerator } from './lib/load.js';
import { BENCH_USAGE, parseBenchOptions } from './lib/options.js';
import { ceiling } from './scenarios/ceiling.js';
import { connections } from './scenarios/connections.js';
import { downlink } from './scenarios/downlink.js';
import { LATENCY_RATES, latency } from './scenarios/latency.js';
import { overload } from './scenarios/overload.js';
import { recovery } from './scenarios/recovery.js';
import { uplink } from './scenarios/uplink.js';
import { UsageError } from '../src/errors.js';

interface Scenario {
  name: string;
  /** Also run against the --compare endpoint. */
  comparable?: boolean;
  run(context: BenchContext): Promise<ScenarioResult[]>;
}

const SCENARIOS: Scenario[] = [
  { name: 'ceiling', run: async (context) => [await ceiling(context, true), await ceiling(context, false)] },
  { name: 'uplink-qos0', comparable: true, run: async (context) => [await uplink(context, 0)] },
  { name: 'uplink-qos1', comparable: true, run: async (context) => [await uplink(context, 1)] },
  { name: 'uplink-qos2', run: async (context) => [await uplink(context, 2)] },
  {
    name: 'latency',
    comparable: true,
    run: async (context) => {
      const results: ScenarioResult[] = [];
      for (const rate of LATENCY_RATES) results.push(await latency(context, rate));
      return results;
    },
  },
  {
    name: 'downlink',
    run: async (context) => [await downlink(context, 10, 0), await downlink(context, 10, 1), await downlink(context, 1_000, 1)],
  },
  { name: 'connections', run: async (context) => [await connections(context)] },
  { name: 'recovery', run: async (context) => [await recovery(context)] },
  { name: 'overload', run: async (context) => [await overload(context)] },
];

/** Uplink figures as ratios to the ceiling and to the compared endpoint, measured in this run. */
function withRatios(results: ScenarioResult[]): ScenarioResult[] {
  const rateOf = (scenario: string, target: string) => results.find((result) => result.scenario === scenario && result.target === target)?.msgsPerSecond as number | undefined;
  return results.map((result) => {
    const ratios: Record<string, number> = {};
    const rate = result.msgsPerSecond as number | undefined;
    if (rate !== undefined && result.scenario.startsWith('uplink-')) {
      const reference = rateOf(result.scenario === 'uplink-qos0' ? 'ceiling-unconfirmed' : 'ceiling-confirmed', 'amqp');
      if (reference) ratios.ofCeiling = Math.round((rate / reference) * 100) / 100;
      const compared = rateOf(result.scenario, 'compare');
      if (compared && result.target === 'bridge') ratios.ofCompared = Math.round((rate / compared) * 100) / 100;
    }
    if (result.scenario.startsWith('latency-') && result.target === 'bridge') {
      const other = results.find((candidate) => candidate.scenario === result.scenario && candidate.target === 'compare');
      const ours = (result.deliveryMs as Record<string, number>).p99!;
      const theirs = other ? (other.deliveryMs as Record<string, number>).p99 : undefined;
      if (theirs) ratios.p99OfCompared = Math.round((ours / theirs) * 100) / 100;
    }
    return Object.keys(ratios).length > 0 ? { ...result, ratios } : result;
  });
}

function table(results: readonly ScenarioResult[]): string {
  const format = (value: unknown): string => {
    if (typeof value === 'number') return value.toLocaleString('en-US');
    if (value && typeof value === 'object') return Object.entries(value).map(([key, inner]) => `${key} ${format(inner)}`).join(' / ');
    return String(value);
  };
  const rows = results.map(({ scenario, target, ...figures }) => `| ${scenario} | ${target} | ${Object.entries(figures).map(([key, value]) => `${key} ${format(value)}`).join(', ')} |`);
  return ['| scenario | target | figures |', '| --- | --- | --- |', ...rows].join('\n');
}

async function main(): Promise<void> {
  const options = parseBenchOptions(process.argv.slice(2), SCENARIOS);
  execFileSync('npm', ['run', '-s', 'build'], { stdio: 'inherit' });
  const tag = randomBytes(3).toString('hex');
  const load = LoadGenerator.start();
  const bridge = await startBridge(`bench-${tag}`);
  const targets: Array<{ name: string; endpoint: RunningBridge }> = [{ name: 'bridge', endpoint: bridge }];
  if (options.compare) targets.push({ name: 'compare', endpoint: externalEndpoint(options.compare, `bench${tag}`) });
  // The same uplink through AMQP 1.0 to the same RabbitMQ, in the same run.
  const amqp10 = options.amqp10 ? await startBridge(`bench10-${tag}`, [], [], { amqp10: true }) : null;
  if (amqp10) targets.push({ name: 'bridge-amqp10', endpoint: amqp10 });
  const results: ScenarioResult[] = [];
  const started = Date.now();
  try {
    for (const scenario of options.scenarios) {
      for (const target of targets) {
        if (target.name === 'compare' && !scenario.comparable) continue;
        if (target.name === 'bridge-amqp10' && !scenario.name.startsWith('uplink-')) continue;
        const context: BenchContext = { target: target.endpoint, targetName: target.name, load, quick: options.quick, repeats: options.repeats, tag };
        for (const result of await scenario.run(context)) {
          console.log(JSON.stringify(result));
          results.push(result);
        }
      }
    }
  } finally {
    load.stop();
    await bridge.stop();
    await amqp10?.stop();
  }
  const final = withRatios(results);
  // Only a full run of every scenario stands for the docs; a quick or partial one is kept apart.
  const kind = options.quick ? 'quick' : options.scenarios.length === SCENARIOS.length ? 'full' : 'partial';
  console.log(`\n${table(final)}\n`);
  console.log(`(${kind} run, ${Math.round((Date.now() - started) / 1000)} s)`);
  mkdirSync('.bench-out', { recursive: true });
  writeFileSync(`.bench-out/${kind}.json`, `${JSON.stringify(final, null, 2)}\n`);
  const points = latencyPoints(final);
  if (points.length > 1) {
    const file = kind === 'full' ? 'docs/performance-latency.svg' : `.bench-out/latency-${kind}.svg`;
    writeFileSync(file, latencyChart(points, LATENCY_CHART_TITLE));
    console.log(`latency chart: ${file}`);
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`bench: ${error.message}\nusage: ${BENCH_USAGE}`);
    process.exit(2);
  }
  console.error(error);
  process.exit(1);
});
