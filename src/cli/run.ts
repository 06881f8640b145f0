import { createBridge } from '../bridge.js';
import { loadLocatedConfigFile } from '../config/load.js';
import { ConfigError, UsageError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { parseArgs } from './args.js';
import { createReloader, watchFile } from './reload.js';
import { writeLine, type CommandIo } from './io.js';

export const RUN_USAGE = 'mqtt-amqp-bridge run --config FILE [--pretty] [--watch]';

/** `run --config FILE`: runs the bridge until SIGINT/SIGTERM, then shuts down gracefully (exit 0). */
export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { positional, options } = parseArgs(argv, [
    { name: 'config', short: 'c', takesValue: true },
    { name: 'pretty', takesValue: false },
    { name: 'watch', takesValue: false },
  ]);
  const file = options.get('config');
  if (typeof file !== 'string' || positional.length > 0) throw new UsageError(`usage: ${RUN_USAGE}`);
  let config;
  let locate;
  try {
    ({ config, locate } = loadLocatedConfigFile(file, { env: io.env }));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    writeLine(io.stderr, error.message);
    return 1;
  }
  const logger = createLogger({ level: config.log.level, pretty: options.has('pretty') || io.stdout.isTTY === true });
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
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  logger.info({ signal }, 'signal received; stopping (send it again to exit at once)');
  const forceExit = (again: NodeJS.Signals) => {
    logger.warn({ signal: again }, 'second signal: exiting without waiting');
    logger.flush();
    process.exit(1);
  };
  process.once('SIGINT', forceExit);
  process.once('SIGTERM', forceExit);
  process.off('SIGHUP', onHangup);
  watcher?.close();
  await bridge.stop();
  logger.flush();
  return 0;
}
