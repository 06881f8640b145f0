import { readFileSync } from 'node:fs';
import { BridgeError, ConfigError, UsageError } from '../errors.js';
import { passwdCommand, PASSWD_USAGE } from './passwd.js';
import { routeCommand, ROUTE_USAGE } from './route.js';
import { runCommand, RUN_USAGE } from './run.js';
import { validateCommand, VALIDATE_USAGE } from './validate.js';
import { writeLine, type CommandIo } from './io.js';

const USAGE = `usage:
  ${RUN_USAGE}
  ${VALIDATE_USAGE}
  ${ROUTE_USAGE}
  ${PASSWD_USAGE}
  mqtt-amqp-bridge --version`;

/** Exit code for a command line that is not valid (and for `route` on a bad config). */
export const EXIT_USAGE = 2;

export async function main(argv: readonly string[], io: CommandIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest, io);
      case 'validate':
        return await validateCommand(rest, io);
      case 'route':
        return await routeCommand(rest, io);
      case 'passwd':
        return await passwdCommand(rest, io);
      case '--version':
      case 'version':
        writeLine(io.stdout, version());
        return 0;
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        writeLine(command === undefined ? io.stderr : io.stdout, USAGE);
        return command === undefined ? EXIT_USAGE : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      writeLine(io.stderr, `${error.message}\n${USAGE}`);
      return EXIT_USAGE;
    }
    if (error instanceof ConfigError) {
      writeLine(io.stderr, error.message);
      return EXIT_USAGE;
    }
    if (error instanceof BridgeError) {
      writeLine(io.stderr, `${error.code}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
