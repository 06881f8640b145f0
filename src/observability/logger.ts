import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export interface LoggerOptions {
  level: string;
  /** Human-readable lines instead of JSON. */
  pretty: boolean;
  /** Where lines go; default stdout. */
  destination?: NodeJS.WritableStream;
  /** Fields on every line (`run --workers N`: which process wrote it). */
  fields?: Readonly<Record<string, string | number>>;
  /** With `pretty`, put before every message instead of the fields, e.g. `[worker 2] `. */
  prettyPrefix?: string;
}

/**
 * The bridge's logger. It redacts nothing by field name: a field called `key` is as often a
 * routing key as a private key. Secrets are kept out where they arise instead (the AMQP URL is
 * logged through redactUrl, passwords and TLS keys are never passed to a log call); see
 * docs/security.md, "Secrets in logs".
 */
export function createLogger(options: LoggerOptions): Logger {
  const fields = options.fields ?? {};
  const base = { level: options.level, base: { name: 'mqtt-amqp-bridge', ...fields } };
  if (options.pretty) {
    const ignore = ['pid', 'hostname', 'name', ...(options.prettyPrefix ? Object.keys(fields) : [])].join(',');
    return pino(
      { ...base, ...(options.prettyPrefix ? { msgPrefix: options.prettyPrefix } : {}) },
      pretty({ destination: options.destination ?? 1, translateTime: 'SYS:HH:MM:ss.l', ignore, sync: true }),
    );
  }
  return pino(base, options.destination ?? pino.destination({ fd: 1, sync: false }));
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
