import cluster, { type Worker } from 'node:cluster';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { loadLocatedConfigFile } from '../../config/load.js';
import type { BridgeConfig } from '../../config/schema.js';
import { BridgeError } from '../../errors.js';
import type { Readiness } from '../../observability/http-server.js';
import { countFleetWideOnce, WORKER_STATE_LABELS, WorkerMetrics, type WorkerState } from '../../observability/metrics.js';
import type { CommandIo } from '../io.js';
import type { ReloadOutcome } from '../reload.js';
import { isFromWorker, type ToWorker, type WorkerAnswer } from './messages.js';
import { forwardLines } from './output.js';
import { combineReadiness, type WorkerReport } from './readiness.js';
import { RestartBackoff } from './restart-backoff.js';

/** How long `/readyz` and `/metrics` wait for each worker's answer (one that is late is left out). */
export const WORKER_ANSWER_TIMEOUT_MS = 2_000;
/** How long a reload may take in a worker before the primary logs that it did not answer. */
export const WORKER_RELOAD_TIMEOUT_MS = 60_000;
/** Beyond shutdownTimeoutMs, how long a stopping worker may take to close before it is killed. */
export const WORKER_STOP_GRACE_MS = 5_000;

export interface WorkerPoolOptions {
  file: string;
  /** The configuration the primary read (the workers read the file themselves). */
  config: BridgeConfig;
  workers: number;
  /** Per listener, the port picked for a `port: 0` (pickFreePorts). */
  ports: ReadonlyArray<number | null>;
  pretty: boolean;
  io: CommandIo;
  logger: Logger;
}

interface Slot {
  readonly slot: number;
  readonly backoff: RestartBackoff;
  worker: Worker | null;
  /** The worker listens for messages (it said hello). */
  listening: boolean;
  state: WorkerState | 'stopped';
  startedAt: number;
  /** How the last worker of this slot died (`signal SIGKILL`), while it waits for its restart. */
  died?: string;
  restartTimer?: NodeJS.Timeout;
  restarts: number;
}

interface PendingAnswer {
  readonly worker: Worker;
  readonly resolve: (answer: WorkerAnswer | null) => void;
}

/** The module each worker runs: entry.ts beside this file (entry.js once built). */
function workerEntry(): string {
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`./entry${extname(self)}`, import.meta.url));
}

/**
 * The workers of `run --workers N` as the primary keeps them: N slots, each with a worker process
 * (node:cluster; they share the listening sockets through the primary), restarted with a backoff
 * when it dies; questions to them (readiness, metrics, reload) over IPC with a timeout; a
 * graceful stop of all.
 */
export class WorkerPool {
  readonly metrics: WorkerMetrics;
  private readonly slots: Slot[];
  private readonly pending = new Map<number, PendingAnswer>();
  private nextId = 0;
  private stopping = false;
  /** While the first workers start: one that fails then fails the whole run. */
  private booting: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private reloads: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: WorkerPoolOptions) {
    this.slots = Array.from({ length: options.workers }, (_, index) => ({
      slot: index + 1,
      backoff: new RestartBackoff(),
      worker: null,
      listening: false,
      state: 'starting' as const,
      startedAt: 0,
      restarts: 0,
    }));
    this.metrics = new WorkerMetrics(() => this.countByState());
  }

  /** Starts every worker; resolves once all run, rejects (having stopped the others) if one exits first. */
  async start(): Promise<void> {
    cluster.setupPrimary({ exec: workerEntry(), args: [], silent: true });
    const booted = new Promise<void>((resolve, reject) => (this.booting = { resolve, reject }));
    for (const slot of this.slots) this.fork(slot);
    try {
      await booted;
    } catch (error) {
      await this.stop();
      throw error;
    } finally {
      this.booting = null;
    }
  }

  /** The process ids of the running workers, by slot (null while a slot has none). */
  pids(): Array<number | null> {
    return this.slots.map((slot) => slot.worker?.process.pid ?? null);
  }

  /** `/readyz`: each running worker is asked; see combineReadiness. */
  async readiness(): Promise<Readiness> {
    const reports = await Promise.all(
      this.slots.map(async (slot): Promise<WorkerReport> => {
        const state = slot.state === 'stopped' ? 'stopping' : slot.state;
        if (state !== 'running' || !slot.worker) return { slot: slot.slot, state, died: slot.died };
        const answer = await this.ask(slot.worker, { type: 'bridge:readiness', id: this.newId() }, WORKER_ANSWER_TIMEOUT_MS);
        return { slot: slot.slot, state, answer: answer?.type === 'bridge:readiness' ? answer.readiness : null };
      }),
    );
    return combineReadiness(!this.stopping, reports);
  }

  /**
   * `/metrics`: every running worker's registry, summed by prom-client's AggregatorRegistry
   * (counters and gauges added up, histograms bucket by bucket), and the primary's own. The
   * workers are asked here rather than through `AggregatorRegistry.clusterMetrics()`, which asks
   * every connected worker, one still loading included (it cannot answer yet, and the whole scrape
   * fails after 5 s), and waits for all: here a worker late by WORKER_ANSWER_TIMEOUT_MS is left out.
   * What every worker reads alike from Redis (FLEET_WIDE_SERIES) is taken from one of them.
   */
  async metricsText(): Promise<string> {
    const answers = await Promise.all(
      this.slots.map((slot) => (slot.state === 'running' && slot.worker ? this.ask(slot.worker, { type: 'bridge:metrics', id: this.newId() }, WORKER_ANSWER_TIMEOUT_MS) : Promise.resolve(null))),
    );
    const perWorker = countFleetWideOnce(answers.flatMap((answer) => (answer?.type === 'bridge:metrics' ? [answer.metrics] : [])));
    return AggregatorRegistry.aggregate([...perWorker, await this.metrics.registry.getMetricsAsJSON()]).metrics();
  }

  /**
   * Tells every running worker to reload the file, one reload at a time, and logs each one's
   * outcome. A worker that is starting or restarting reads the file as it is when it starts.
   */
  reload(why: string): Promise<void> {
    const reload = this.reloads.then(() => this.reloadAll(why));
    this.reloads = reload.catch(() => {});
    return reload;
  }

  /**
   * Stops every worker gracefully (each bridge's own stop), killing one that takes longer than
   * shutdownTimeoutMs + WORKER_STOP_GRACE_MS; no worker is restarted from here on.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const limitMs = this.options.config.shutdownTimeoutMs + WORKER_STOP_GRACE_MS;
    await Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.restartTimer);
        const worker = slot.worker;
        if (!worker) {
          slot.state = 'stopped';
          return;
        }
        slot.state = 'stopping';
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        // One still loading has started nothing: it is simply ended.
        if (slot.listening) this.send(worker, { type: 'bridge:stop' });
        else worker.process.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), limitMs)));
        if ((await Promise.race([exited, late])) === 'late') {
          this.options.logger.warn({ slot: slot.slot, workerPid: worker.process.pid, limitMs }, `worker ${slot.slot} did not stop within ${limitMs} ms: killing it`);
          worker.process.kill('SIGKILL');
          await exited;
        }
        clearTimeout(timer);
      }),
    );
  }

  /** Ends every worker at once (a second SIGINT/SIGTERM). */
  kill(): void {
    this.stopping = true;
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.worker?.process.kill('SIGKILL');
    }
  }

  private fork(slot: Slot): void {
    const { io } = this.options;
    const worker = cluster.fork(io.env);
    slot.worker = worker;
    slot.listening = false;
    slot.state = 'starting';
    slot.startedAt = Date.now();
    if (worker.process.stdout) forwardLines(worker.process.stdout, io.stdout);
    if (worker.process.stderr) forwardLines(worker.process.stderr, io.stderr);
    worker.on('message', (message: unknown) => this.onMessage(slot, worker, message));
    worker.on('exit', (code: number | null, signal: NodeJS.Signals | null) => this.onExit(slot, worker, code, signal));
    // A worker that cannot be written to dies; its 'exit' does the rest.
    worker.on('error', (error: Error) => this.options.logger.warn({ slot: slot.slot, err: error }, `worker ${slot.slot}: ${error.message}`));
  }

  private onMessage(slot: Slot, worker: Worker, message: unknown): void {
    if (!isFromWorker(message) || slot.worker !== worker) return;
    if (message.type === 'bridge:hello') {
      slot.listening = true;
      const { file, ports, pretty } = this.options;
      this.send(worker, { type: 'bridge:start', settings: { slot: slot.slot, file, ports, pretty } });
      return;
    }
    if (message.type === 'bridge:running') {
      if (slot.state !== 'starting') return;
      slot.state = 'running';
      slot.died = undefined;
      if (slot.restarts > 0) this.options.logger.info({ slot: slot.slot, workerPid: worker.process.pid, restarts: slot.restarts }, `worker ${slot.slot} restarted (pid ${worker.process.pid})`);
      if (this.booting && this.slots.every((each) => each.state === 'running')) this.booting.resolve();
      return;
    }
    const waiting = this.pending.get(message.id);
    if (!waiting || waiting.worker !== worker) return;
    this.pending.delete(message.id);
    waiting.resolve(message);
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    for (const [id, waiting] of this.pending) {
      if (waiting.worker !== worker) continue;
      this.pending.delete(id);
      waiting.resolve(null);
    }
    if (slot.worker !== worker) return;
    slot.worker = null;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    const pid = worker.process.pid;
    const { logger } = this.options;
    if (this.stopping) {
      slot.state = 'stopped';
      if (code === 0) logger.info({ slot: slot.slot, workerPid: pid }, `worker ${slot.slot} stopped`);
      else logger.warn({ slot: slot.slot, workerPid: pid, code, signal }, `worker ${slot.slot} ended with ${how}`);
      return;
    }
    if (this.booting) {
      slot.state = 'stopped';
      logger.error({ slot: slot.slot, workerPid: pid, code, signal }, `worker ${slot.slot} ended (${how}) before it ran: stopping the others`);
      this.booting.reject(new BridgeError('BRIDGE_ERR_WORKER_START', `worker ${slot.slot} ended (${how}) before it ran`));
      return;
    }
    const ranForMs = Date.now() - slot.startedAt;
    const delayMs = slot.backoff.delayAfterDeath(ranForMs);
    slot.state = 'restarting';
    slot.died = how;
    logger.error({ slot: slot.slot, workerPid: pid, code, signal, ranForMs, restartInMs: delayMs }, `worker ${slot.slot} (pid ${pid}) died (${how}); restarting it in ${delayMs} ms`);
    slot.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      slot.restarts++;
      this.metrics.restarts.inc();
      this.fork(slot);
    }, delayMs);
  }

  private async reloadAll(why: string): Promise<void> {
    const { logger, file, io } = this.options;
    // The primary's own reloadable setting (its log level); each worker logs the file's problems.
    try {
      logger.level = loadLocatedConfigFile(file, { env: io.env }).config.log.level;
    } catch {
      // Reported by every worker below.
    }
    logger.info({ file, why }, 'reloading the configuration in every worker');
    const outcomes = await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.state !== 'running' || !slot.worker) return { slot, outcome: null, skipped: slot.state };
        const answer = await this.ask(slot.worker, { type: 'bridge:reload', id: this.newId(), why }, WORKER_RELOAD_TIMEOUT_MS);
        return { slot, outcome: answer?.type === 'bridge:reloaded' ? answer.outcome : null, skipped: null };
      }),
    );
    for (const { slot, outcome, skipped } of outcomes) this.logReload(slot.slot, outcome, skipped);
  }

  private logReload(slot: number, outcome: ReloadOutcome | null, skipped: string | null): void {
    const { logger } = this.options;
    if (skipped) logger.warn({ slot, state: skipped }, `worker ${slot} is ${skipped}: it reads the file when it starts`);
    else if (!outcome) logger.error({ slot }, `worker ${slot}: no answer to the reload`);
    else if (outcome.result === 'applied') logger.info({ slot, applied: outcome.applied, restartRequired: outcome.restartRequired }, `worker ${slot}: configuration reloaded`);
    else if (outcome.result === 'invalid') logger.error({ slot, problems: outcome.problems }, `worker ${slot}: the configuration has problems: nothing was changed`);
    else logger.error({ slot, error: outcome.error }, `worker ${slot}: the reload failed: ${outcome.error}`);
  }

  private ask(worker: Worker, message: Extract<ToWorker, { id: number }>, timeoutMs: number): Promise<WorkerAnswer | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(message.id);
        resolve(null);
      }, timeoutMs);
      this.pending.set(message.id, {
        worker,
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
      });
      this.send(worker, message);
    });
  }

  private send(worker: Worker, message: ToWorker): void {
    // A worker that is gone cannot be told anything: its 'exit' settles what waits for it.
    if (worker.isConnected()) worker.send(message);
  }

  private newId(): number {
    return ++this.nextId;
  }

  private countByState(): Record<WorkerState, number> {
    const counts = Object.fromEntries(WORKER_STATE_LABELS.map((state) => [state, 0])) as Record<WorkerState, number>;
    for (const slot of this.slots) if (slot.state !== 'stopped') counts[slot.state]++;
    return counts;
  }
}
