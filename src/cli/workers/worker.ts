import { createBridge } from '../../bridge.js';
import { loadLocatedConfigFile } from '../../config/load.js';
import { ConfigError } from '../../errors.js';
import { createLogger } from '../../observability/logger.js';
import type { CommandIo } from '../io.js';
import { writeLine } from '../io.js';
import { createReloader } from '../reload.js';
import { isToWorker, type FromWorker, type ToWorker, type WorkerSettings } from './messages.js';
import { workerConfig } from './ports.js';

/** The IPC channel to the primary (process.send and its messages; a fake in tests). */
export interface PrimaryChannel {
  send(message: FromWorker): void;
  onMessage(listener: (message: unknown) => void): void;
  /** Called when the worker must stop on its own: the primary is gone, or SIGTERM came. */
  onStop(listener: () => void): void;
}

/**
 * One worker of `run --workers N`: waits for the primary's settings, runs a bridge on them (its
 * own AMQP connection and metrics, no HTTP endpoint, the listening sockets shared through the
 * primary), answers the primary's questions about readiness, reloads when told to, and stops
 * gracefully when told to, or when the channel says so. Returns the exit code.
 */
export async function runWorker(io: CommandIo, primary: PrimaryChannel): Promise<number> {
  const messages: ToWorker[] = [];
  let wake: (() => void) | null = null;
  let stopRequested = false;
  let onStop: () => void = () => {};
  const requestStop = () => {
    stopRequested = true;
    onStop();
    wake?.();
  };
  primary.onStop(requestStop);
  primary.onMessage((message) => {
    if (!isToWorker(message)) return;
    if (message.type === 'bridge:stop') requestStop();
    else messages.push(message);
    wake?.();
  });
  primary.send({ type: 'bridge:hello' });

  const next = async (): Promise<ToWorker | null> => {
    while (messages.length === 0 && !stopRequested) await new Promise<void>((resolve) => (wake = resolve));
    wake = null;
    return messages.shift() ?? null;
  };
  let start = await next();
  while (start !== null && start.type !== 'bridge:start') start = await next();
  if (start === null) return 0;
  const settings: WorkerSettings = start.settings;

  let loaded;
  try {
    loaded = loadLocatedConfigFile(settings.file, { env: io.env });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    writeLine(io.stderr, error.message);
    return 1;
  }
  const logger = createLogger({
    level: loaded.config.log.level,
    pretty: settings.pretty,
    fields: { role: 'worker', worker: settings.slot, pid: process.pid },
    prettyPrefix: `[worker ${settings.slot}] `,
  });
  const adjust = (config: typeof loaded.config) => workerConfig(config, settings.ports);
  const bridge = createBridge({ config: adjust(loaded.config), logger, locate: loaded.locate });
  onStop = () => {
    logger.info('worker stopping');
    void bridge.stop();
  };

  try {
    await bridge.start();
  } catch (error) {
    if (stopRequested) return 0;
    logger.fatal({ code: (error as { code?: unknown }).code, err: error }, `the bridge could not start: ${(error as Error).message}`);
    logger.flush();
    return 1;
  }
  if (stopRequested) {
    await bridge.stop();
    return 0;
  }
  const reload = createReloader(settings.file, io, bridge, logger, adjust);
  primary.send({ type: 'bridge:running' });
  logger.info({ slot: settings.slot }, 'worker running');

  for (let message = await next(); message !== null; message = await next()) {
    if (message.type === 'bridge:readiness') primary.send({ type: 'bridge:readiness', id: message.id, readiness: bridge.readiness() });
    if (message.type === 'bridge:metrics') {
      const { id } = message;
      // The primary sums these over the workers (prom-client's AggregatorRegistry.aggregate).
      void bridge.metrics.registry.getMetricsAsJSON().then((metrics) => primary.send({ type: 'bridge:metrics', id, metrics }));
    }
    if (message.type === 'bridge:reload') {
      const { id } = message;
      void reload(message.why)
        .catch((error: Error) => ({ result: 'failed' as const, error: error.message }))
        .then((outcome) => primary.send({ type: 'bridge:reloaded', id, outcome }));
    }
  }
  await bridge.stop();
  logger.flush();
  return 0;
}
