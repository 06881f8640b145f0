import { createRequire } from 'node:module';

/**
 * Loggers of the `debug` module that are off cost nothing. mqtt-packet calls its loggers about 20
 * times for each PUBLISH parsed and each PUBACK written, and a `debug` logger that is off still
 * gathers its arguments into a new array on every call: 0.65 us per message, 4% of the bridge's
 * CPU per uplink message (docs/performance.md). So the `debug` module that mqtt-packet, rhea and
 * ioredis require is replaced, before any of them loads, by one that hands out the real logger
 * for a namespace that DEBUG enables at start and, for the others, a logger that does nothing.
 * `DEBUG=mqtt-packet:* mqtt-amqp-bridge run ...` still logs; turning loggers on later through
 * `debug.enable()` does not reach those already made. Imported first by every entry point.
 */

interface DebugLogger {
  (...args: unknown[]): void;
  enabled: boolean;
  namespace: string;
}
type DebugFactory = ((namespace: string) => DebugLogger) & { [QUIET]?: true };

const QUIET = Symbol.for('mqtt-amqp-bridge.quiet-debug');
const require = createRequire(import.meta.url);

/** The libraries that log through `debug` on every message or frame. */
const USERS = ['mqtt-packet', 'rhea', 'ioredis'];

for (const user of USERS) {
  let path: string;
  try {
    path = createRequire(require.resolve(user)).resolve('debug');
  } catch {
    continue; // not installed, or it does not use debug
  }
  quiet(path);
}

/** Replaces, in require's cache, the `debug` module at `path` (once: several users may share it). */
function quiet(path: string): void {
  const real = require(path) as DebugFactory;
  const cached = require.cache[path]!;
  if (real[QUIET]) return;
  const factory = (namespace: string): DebugLogger => {
    const logger = real(namespace);
    return logger.enabled ? logger : offLogger(namespace, factory);
  };
  cached.exports = Object.assign(factory, real, { default: factory, [QUIET]: true as const });
}

function offLogger(namespace: string, factory: (namespace: string) => DebugLogger): DebugLogger {
  return Object.assign(() => {}, {
    enabled: false,
    namespace,
    log: () => {},
    destroy: () => false,
    extend: (sub: string, delimiter = ':') => factory(`${namespace}${delimiter}${sub}`),
  });
}

