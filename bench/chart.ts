/** Draws docs/performance-latency.svg again from a saved run: `node --import tsx bench/chart.ts [.bench-out/full.json]`. */
import { readFileSync, writeFileSync } from 'node:fs';
import { LATENCY_CHART_TITLE, latencyChart, latencyPoints } from './lib/chart.js';
import type { ScenarioResult } from './lib/context.js';

const file = process.argv[2] ?? '.bench-out/full.json';
const results = JSON.parse(readFileSync(file, 'utf8')) as ScenarioResult[];
const points = latencyPoints(results);
writeFileSync('docs/performance-latency.svg', latencyChart(points, LATENCY_CHART_TITLE));
console.log(`docs/performance-latency.svg from ${points.length} rates of ${file}`);
