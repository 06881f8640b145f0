import { loadConfigFile } from '../config/load.js';
import { ConfigError, UsageError } from '../errors.js';
import { parseArgs } from './args.js';
import { writeLine, type CommandIo } from './io.js';

export const VALIDATE_USAGE = 'mqtt-amqp-bridge validate FILE';

/** `validate FILE`: prints `ok` (exit 0) or every problem as FILE:LINE:COL: message (exit 1). */
export function validateCommand(argv: readonly string[], io: CommandIo): number {
  const { positional } = parseArgs(argv, []);
  if (positional.length !== 1) throw new UsageError(`usage: ${VALIDATE_USAGE}`);
  try {
    loadConfigFile(positional[0]!, { env: io.env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    writeLine(io.stdout, error.message);
    return 1;
  }
  writeLine(io.stdout, 'ok');
  return 0;
}
