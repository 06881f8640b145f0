import { availableParallelism } from 'node:os';
import type { BridgeConfig } from '../../config/schema.js';
import { startHttpServer, type RunningHttpServer } from '../../observability/http-server.js';
import { createLogger } from '../../observability/logger.js';
import type { CommandIo } from '../io.js';
import { watchFile } from '../reload.js';
import { waitForStopSignal } from '../signals.js';
import { WorkerPool } from './primary.js';
import { pickFreePorts } from './ports.js';

export interface RunWorkersOptions {
  file: string;
  config: BridgeConfig;
  workers: number;
  pretty: boolean;
  watch: boolean;
}

/**
 * `run --workers N`, the primary process: picks the ports the configuration leaves to chance,
 * serves the HTTP endpoint for all the workers, starts them (one that fails to start fails the
 * run: exit 1), restarts those that die, reloads them all on SIGHUP (or a change of the file with
 * `--watch`), and on SIGINT/SIGTERM stops them gracefully and exits 0.
 */
export async function runWorkers(options: RunWorkersOptions, io: CommandIo): Promise<number> {
  const { file, config, workers, pretty } = options;
  // Through io.stdout, the stream the workers' lines are copied to: one writer, whole lines.
  const logger = createLogger({ level: config.log.level, pretty, destination: io.stdout, fields: { role: 'primary', pid: process.pid }, prettyPrefix: '[primary] ' });
  const cores = availableParallelism();
  if (workers > cores) logger.warn({ workers, cores }, `${workers} workers on ${cores} cores: they will take turns on the CPU`);
  const ports = await pickFreePorts(config.mqtt.listeners);
  const pool = new WorkerPool({ file, config, workers, ports, pretty, io, logger });
  let http: RunningHttpServer | null = null;
  if (config.http.enabled) {
    try {
      http = await startHttpServer({
        host: config.http.host,
        port: config.http.port,
        registry: { contentType: pool.metrics.registry.contentType, metrics: () => pool.metricsText() },
        readiness: () => pool.readiness(),
      });
    } catch (error) {
      logger.fatal({ code: (error as { code?: unknown }).code, err: error }, `the bridge could not start: ${(error as Error).message}`);
      logger.flush();
      return 1;
    }
    logger.info({ address: http.url }, `metrics and health on ${http.url} (/metrics, /healthz, /readyz) for all the workers`);
  }
  // Registered first: the default action of SIGHUP would end the primary while the workers start.
  const onHangup = () => void pool.reload('SIGHUP');
  process.on('SIGHUP', onHangup);
  try {
    await pool.start();
  } catch (error) {
    logger.fatal({ code: (error as { code?: unknown }).code, err: error }, `the bridge could not start: ${(error as Error).message}`);
    process.off('SIGHUP', onHangup);
    await http?.close();
    logger.flush();
    return 1;
  }
  logger.info({ config: file, workers, pids: pool.pids() }, `bridge running with ${workers} workers`);
  const watcher = options.watch ? watchFile(file, () => void pool.reload('file changed')) : null;
  await waitForStopSignal(logger, () => pool.kill());
  process.off('SIGHUP', onHangup);
  watcher?.close();
  await pool.stop();
  await http?.close();
  logger.info('stopped');
  logger.flush();
  return 0;
}
