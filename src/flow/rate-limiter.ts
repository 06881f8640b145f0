/**
 * A token bucket per client: `perSecond` publishes a second on average, bursts up to `burst`.
 * `take` answers 0 when the publish may go now, or how many milliseconds until it may.
 */
export interface RateLimiterOptions {
  perSecond: number;
  burst: number;
  /** Buckets of clients idle this long are forgotten (they refill to full anyway). */
  idleForgetMs?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private lastSweep: number;

  constructor(private readonly options: RateLimiterOptions) {
    this.now = options.now ?? Date.now;
    this.lastSweep = this.now();
  }

  /** Takes a token if there is one (0), else says how long until the next one (the token is then reserved). */
  take(clientId: string): number {
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(clientId) ?? { tokens: this.options.burst, at: now };
    bucket.tokens = Math.min(this.options.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.options.perSecond);
    bucket.at = now;
    bucket.tokens -= 1;
    this.buckets.set(clientId, bucket);
    return bucket.tokens >= 0 ? 0 : Math.ceil((-bucket.tokens / this.options.perSecond) * 1000);
  }

  /** Would a publish go now? Takes the token only if so (for publishes that are dropped rather than delayed). */
  tryTake(clientId: string): boolean {
    const wait = this.take(clientId);
    if (wait === 0) return true;
    this.buckets.get(clientId)!.tokens += 1; // give back the reservation
    return false;
  }

  private sweep(now: number): void {
    const idle = this.options.idleForgetMs ?? 60_000;
    if (now - this.lastSweep < idle) return;
    this.lastSweep = now;
    for (const [clientId, bucket] of this.buckets) if (now - bucket.at > idle) this.buckets.delete(clientId);
  }
}
