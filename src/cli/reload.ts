import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Bridge } from '../bridge.js';
import { loadLocatedConfigFile } from '../config/load.js';
import type { BridgeConfig } from '../config/schema.js';
import { ConfigError, formatProblem } from '../errors.js';
import type { CommandIo } from './io.js';

/** How long file changes are gathered before one reload (editors write in several steps). */
export const WATCH_DEBOUNCE_MS = 300;

/** What one reload did (`run --workers N` reports it to the primary). */
export type ReloadOutcome =
  | { readonly result: 'applied'; readonly applied: readonly string[]; readonly restartRequired: readonly string[] }
  | { readonly result: 'invalid'; readonly problems: number }
  | { readonly result: 'failed'; readonly error: string };

/**
 * Reloads the configuration file into the running bridge. An invalid file changes nothing:
 * every problem is logged as FILE:LINE:COL: message. Reloads never overlap. `adjust` changes
 * what was read before it is applied (a worker's own listener ports and HTTP endpoint).
 */
export function createReloader(
  file: string,
  io: CommandIo,
  bridge: Bridge,
  logger: Logger,
  adjust: (config: BridgeConfig) => BridgeConfig = (config) => config,
): (why: string) => Promise<ReloadOutcome> {
  let chain: Promise<unknown> = Promise.resolve();
  return (why) => {
    const reload = chain.then(async (): Promise<ReloadOutcome> => {
      logger.info({ file, why }, 'reloading the configuration');
      let config;
      let locate;
      try {
        ({ config, locate } = loadLocatedConfigFile(file, { env: io.env }));
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        for (const problem of error.problems) logger.error({ file: problem.file, line: problem.line, col: problem.col }, formatProblem(problem));
        logger.error({ problems: error.problems.length }, 'the configuration has problems: nothing was changed');
        bridge.metrics.configReloads.inc({ result: 'invalid' });
        return { result: 'invalid', problems: error.problems.length };
      }
      try {
        const { applied, restartRequired } = await bridge.reload(adjust(config), { locate });
        return { result: 'applied', applied, restartRequired };
      } catch (error) {
        bridge.metrics.configReloads.inc({ result: 'invalid' });
        logger.error({ err: error }, 'the reload failed');
        return { result: 'failed', error: (error as Error).message };
      }
    });
    chain = reload.catch(() => {});
    return reload;
  };
}

/** Calls `changed` (debounced) when the file is written or replaced. */
export function watchFile(file: string, changed: () => void): FSWatcher {
  let timer: NodeJS.Timeout | null = null;
  // The folder, not the file: editors often replace a file by renaming a new one over it.
  return watch(dirname(file), (_event, name) => {
    if (name !== basename(file)) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      changed();
    }, WATCH_DEBOUNCE_MS);
  });
}
