import { hashPassword } from '../auth/passwords.js';
import { UsageError } from '../errors.js';
import { parseArgs } from './args.js';
import { readAll, writeLine, type CommandIo } from './io.js';

export const PASSWD_USAGE = 'mqtt-amqp-bridge passwd < password-file   (or: echo -n secret | mqtt-amqp-bridge passwd)';

/**
 * `passwd`: reads a password from standard input (one trailing newline is not part of it) and
 * prints its scrypt hash for `auth.users[].password`. The password is never an argument, so it
 * does not end up in the shell history or the process list.
 */
export async function passwdCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { positional } = parseArgs(argv, []);
  if (positional.length > 0 || !io.stdin) throw new UsageError(`usage: ${PASSWD_USAGE}`);
  const password = (await readAll(io.stdin)).replace(/\r?\n$/, '');
  if (password.length === 0) throw new UsageError('the password read from standard input is empty');
  writeLine(io.stdout, await hashPassword(password));
  return 0;
}
