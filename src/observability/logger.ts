import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export interface LoggerOptions {
  level: string;
  /** Human-readable lines instead of JSON. */
  pretty: boolean;
  /** Where lines go; default stdout. */
  destination?: NodeJS.WritableStream;
}

/** Paths whose values never reach the log (credentials in URLs, passwords). */
export const REDACTED_PATHS = ['password', '*.password', 'url', '*.url', 'key', '*.key'];

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    base: { name: 'mqtt-amqp-bridge' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (options.pretty) {
    return pino(base, pretty({ destination: options.destination ?? 1, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name', sync: true }));
  }
  return pino(base, options.destination ?? pino.destination({ fd: 1, sync: false }));
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
