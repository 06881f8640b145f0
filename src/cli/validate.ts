import { validateConfigFile } from '../config/load.js';
import { ConfigError, formatProblem, UsageError } from '../errors.js';
import { parseArgs } from './args.js';
import { writeLine, type CommandIo } from './io.js';

export const VALIDATE_USAGE = 'mqtt-amqp-bridge validate FILE [--strict]';

/**
 * `validate FILE`: prints `ok` (exit 0) or every problem as FILE:LINE:COL: message (exit 1);
 * the linter's warnings print as FILE:LINE:COL: warning: message and leave the exit code 0,
 * unless `--strict` makes them errors (exit 1).
 */
export function validateCommand(argv: readonly string[], io: CommandIo): number {
  const { positional, options } = parseArgs(argv, [{ name: 'strict', takesValue: false }]);
  if (positional.length !== 1) throw new UsageError(`usage: ${VALIDATE_USAGE}`);
  let warnings;
  try {
    ({ warnings } = validateConfigFile(positional[0]!, { env: io.env }));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    writeLine(io.stdout, error.message);
    return 1;
  }
  for (const warning of warnings) writeLine(io.stdout, formatProblem({ ...warning, message: `warning: ${warning.message}` }));
  if (warnings.length > 0 && options.has('strict')) return 1;
  writeLine(io.stdout, warnings.length > 0 ? `ok, with ${warnings.length} warning${warnings.length === 1 ? '' : 's'}` : 'ok');
  return 0;
}
