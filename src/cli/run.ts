import { createBridge } from '../bridge.js';
import { loadLocatedConfigFile } from '../config/load.js';
import { ConfigError, UsageError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { integerOption, parseArgs } from './args.js';
import { createReloader, watchFile } from './reload.js';
import { waitForStopSignal } from './signals.js';
import { runWorkers } from './workers/run-workers.js';
import { writeLine, type CommandIo } from './io.js';

export const RUN_USAGE = 'mqtt-amqp-bridge run --config FILE [--workers N] [--pretty] [--watch]';

/** The most `--workers` takes: more processes than that is a mistake, not a plan. */
export const MAX_WORKERS = 256;

/**
 * `run --config FILE`: runs the bridge until SIGINT/SIGTERM, then shuts down gracefully (exit 0).
 * With `--workers N` (N > 1), N worker processes share the ports and their MQTT state in Redis.
 */
export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { positional, options } = parseArgs(argv, [
    { name: 'config', short: 'c', takesValue: true },
    { name: 'workers', short: 'w', takesValue: true },
    { name: 'pretty', takesValue: false },
    { name: 'watch', takesValue: false },
  ]);
  const file = options.get('config');
  if (typeof file !== 'string' || positional.length > 0) throw new UsageError(`usage: ${RUN_USAGE}`);
  const workers = integerOption(options, 'workers', { min: 1, max: MAX_WORKERS, fallback: 1 });
  let config;
  let locate;
  try {
    ({ config, locate } = loadLocatedConfigFile(file, { env: io.env }));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    writeLine(io.stderr, error.message);
    return 1;
  }
  if (workers > 1 && config.mqtt.persistence.type !== 'redis') {
    throw new UsageError(
      `--workers ${workers} needs mqtt.persistence.type: redis in ${file}: workers are one MQTT server only when they share sessions, subscriptions and retained messages through Redis (with memory, each would be a server of its own)`,
    );
  }
  const pretty = options.has('pretty') || io.stdout.isTTY === true;
  if (workers > 1) return runWorkers({ file, config, workers, pretty, watch: options.has('watch') }, io);

  const logger = createLogger({ level: config.log.level, pretty });
  const bridge = createBridge({ config, logger, locate });
  try {
    await bridge.start();
  } catch (error) {
    // The bridge has undone what it started; the process ends with the reason logged.
    logger.fatal({ code: (error as { code?: unknown }).code, err: error }, `the bridge could not start: ${(error as Error).message}`);
    logger.flush();
    return 1;
  }
  logger.info({ config: file }, 'bridge running');
  const reload = createReloader(file, io, bridge, logger);
  const onHangup = () => void reload('SIGHUP');
  process.on('SIGHUP', onHangup);
  const watcher = options.has('watch') ? watchFile(file, () => void reload('file changed')) : null;
  await waitForStopSignal(logger);
  process.off('SIGHUP', onHangup);
  watcher?.close();
  await bridge.stop();
  logger.flush();
  return 0;
}
