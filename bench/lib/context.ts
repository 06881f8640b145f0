import type { RunningBridge } from './bridge.js';
import type { LoadGenerator } from './load.js';

export interface BenchContext {
  /** The bridge under test (or, for --compare, the other endpoint). */
  target: RunningBridge;
  /** 'bridge' or 'compare'. */
  targetName: string;
  load: LoadGenerator;
  quick: boolean;
  /** Runs per throughput figure; the median is reported. */
  repeats: number;
  /** A word unique to this run, in every topic and routing key. */
  tag: string;
}

/** One line of output: the scenario, the target, its figures. */
export interface ScenarioResult {
  scenario: string;
  target: string;
  [figure: string]: string | number | boolean | null | Record<string, number>;
}

export const PUBLISHERS = 10;
export const PAYLOAD_BYTES = 64;
