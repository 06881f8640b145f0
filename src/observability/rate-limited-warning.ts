import type { Logger } from 'pino';

export interface RateLimitedWarningOptions {
  logger: Logger;
  message: string;
  /** Keys remembered as already warned about; past this the memory is reset. */
  maxKeys?: number;
  /** At most this many warnings per window... */
  perWindow?: number;
  /** ...of this many milliseconds. */
  windowMs?: number;
  now?: () => number;
}

/**
 * Logs a warning once per key (a topic, say; a null key is never remembered), and at most
 * `perWindow` warnings per window;
 * what is held back is counted and reported with the next warning that gets through.
 */
export class RateLimitedWarning {
  private readonly seen = new Set<string>();
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;
  private readonly maxKeys: number;
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(private readonly options: RateLimitedWarningOptions) {
    this.maxKeys = options.maxKeys ?? 10_000;
    this.perWindow = options.perWindow ?? 10;
    this.windowMs = options.windowMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  warn(key: string | null, fields: Record<string, unknown>): void {
    if (key !== null) {
      if (this.seen.has(key)) return;
      if (this.seen.size >= this.maxKeys) this.seen.clear();
      this.seen.add(key);
    }
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perWindow) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.options.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, this.options.message);
  }
}
