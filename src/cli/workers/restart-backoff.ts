/** The delay before restarting a worker that died after running long enough to count as stable. */
export const WORKER_RESTART_INITIAL_DELAY_MS = 500;
/** The longest delay between restarts of a worker that keeps dying. */
export const WORKER_RESTART_MAX_DELAY_MS = 30_000;
/** A worker that ran this long before it died starts the backoff over. */
export const WORKER_STABLE_AFTER_MS = 60_000;

export interface RestartPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly stableAfterMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: WORKER_RESTART_INITIAL_DELAY_MS,
  maxDelayMs: WORKER_RESTART_MAX_DELAY_MS,
  stableAfterMs: WORKER_STABLE_AFTER_MS,
};

/**
 * When to restart one worker slot: soon after a death that follows a stable run, then twice as
 * long after each death that follows a short one, up to the maximum. A worker that cannot start
 * (a certificate gone, say) is so tried again every `maxDelayMs` while the others serve.
 */
export class RestartBackoff {
  private quickDeaths = 0;

  constructor(private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY) {}

  /** The worker died after running `ranForMs`: how long to wait before starting the next one. */
  delayAfterDeath(ranForMs: number): number {
    if (ranForMs >= this.policy.stableAfterMs) this.quickDeaths = 0;
    this.quickDeaths++;
    return Math.min(this.policy.initialDelayMs * 2 ** (this.quickDeaths - 1), this.policy.maxDelayMs);
  }
}
