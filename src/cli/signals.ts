import type { Logger } from 'pino';

/**
 * Resolves with the first SIGINT or SIGTERM, logged as the start of a graceful stop; a second
 * one calls `force` (which should end the process without waiting) and exits 1.
 */
export async function waitForStopSignal(logger: Logger, force: () => void = () => {}): Promise<NodeJS.Signals> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  logger.info({ signal }, 'signal received; stopping (send it again to exit at once)');
  const forceExit = (again: NodeJS.Signals) => {
    logger.warn({ signal: again }, 'second signal: exiting without waiting');
    force();
    logger.flush();
    process.exit(1);
  };
  process.once('SIGINT', forceExit);
  process.once('SIGTERM', forceExit);
  return signal;
}
