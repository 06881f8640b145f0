import { UsageError } from '../errors.js';

export interface ParsedArgs {
  positional: string[];
  options: Map<string, string | true>;
  /** Every value of each repeatable option, in order. */
  repeated: Map<string, string[]>;
}

export interface OptionSpec {
  /** Long name without dashes. */
  name: string;
  short?: string;
  takesValue: boolean;
  /** May be given several times (collected in `repeated`). */
  repeatable?: boolean;
}

/** A small argument parser: `--name value`, `--name=value`, `-c value`, flags, positionals. */
export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const positional: string[] = [];
  const options = new Map<string, string | true>();
  const repeated = new Map<string, string[]>();
  const byName = new Map(specs.map((spec) => [spec.name, spec]));
  const byShort = new Map(specs.flatMap((spec) => (spec.short ? [[spec.short, spec] as const] : [])));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const [flag, inlineValue] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const spec = flag.startsWith('--') ? byName.get(flag.slice(2)) : byShort.get(flag.slice(1));
    if (!spec) throw new UsageError(`unknown option ${flag}`);
    if (!spec.takesValue) {
      if (inlineValue !== undefined) throw new UsageError(`option --${spec.name} takes no value`);
      options.set(spec.name, true);
      continue;
    }
    const value = inlineValue ?? argv[++i];
    if (value === undefined) throw new UsageError(`option --${spec.name} needs a value`);
    options.set(spec.name, value);
    if (spec.repeatable) repeated.set(spec.name, [...(repeated.get(spec.name) ?? []), value]);
  }
  return { positional, options, repeated };
}

/** `--header NAME=VALUE` arguments as a header table (a later NAME wins). */
export function parseHeaderArgs(args: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const header of args) {
    const equals = header.indexOf('=');
    if (equals <= 0) throw new UsageError(`--header takes NAME=VALUE, not "${header}"`);
    headers[header.slice(0, equals)] = header.slice(equals + 1);
  }
  return headers;
}

/** A whole-number option between `min` and `max`, `fallback` when absent; anything else is a UsageError. */
export function integerOption(options: ParsedArgs['options'], name: string, { min, max, fallback }: { min: number; max: number; fallback: number }): number {
  const value = options.get(name);
  if (value === undefined) return fallback;
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(number >= min && number <= max)) throw new UsageError(`--${name} takes a whole number from ${min} to ${max}, not "${String(value)}"`);
  return number;
}
