import { parseArgs } from '../../src/cli/args.js';
import { UsageError } from '../../src/errors.js';

export const BENCH_USAGE = 'npm run bench -- [--scenario NAME[,NAME]] [--quick] [--repeat N] [--compare mqtt://HOST:PORT] [--amqp10]';

export interface BenchOptions<S> {
  scenarios: S[];
  quick: boolean;
  /** Runs per throughput figure. */
  repeats: number;
  compare: string | null;
  /** Also run the uplink scenarios through a second bridge speaking AMQP 1.0 to the same RabbitMQ (its rabbitmq_amqp1_0 plugin). */
  amqp10: boolean;
}

/** The bench's command line; a UsageError for an unknown option, scenario or a bad --repeat. */
export function parseBenchOptions<S extends { name: string }>(argv: readonly string[], all: readonly S[]): BenchOptions<S> {
  const { positional, options } = parseArgs(argv, [
    { name: 'scenario', takesValue: true },
    { name: 'quick', takesValue: false },
    { name: 'repeat', takesValue: true },
    { name: 'compare', takesValue: true },
    { name: 'amqp10', takesValue: false },
  ]);
  if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
  const quick = options.has('quick');
  const wanted = options.get('scenario') as string | undefined;
  let scenarios = [...all];
  if (wanted !== undefined) {
    const names = wanted.split(',');
    const unknown = names.filter((name) => !all.some((scenario) => scenario.name === name));
    if (unknown.length > 0) throw new UsageError(`no scenario "${unknown.join('", "')}"; there are: ${all.map((scenario) => scenario.name).join(', ')}`);
    scenarios = all.filter((scenario) => names.includes(scenario.name));
  }
  const repeatText = options.get('repeat') as string | undefined;
  if (repeatText !== undefined && !/^[1-9]\d*$/.test(repeatText)) throw new UsageError(`--repeat takes a positive integer, not "${repeatText}"`);
  return { scenarios, quick, repeats: repeatText === undefined ? (quick ? 1 : 3) : Number(repeatText), compare: (options.get('compare') as string | undefined) ?? null, amqp10: options.has('amqp10') };
}
