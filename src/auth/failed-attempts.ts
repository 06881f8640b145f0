/**
 * Failed logins per source address: each failure doubles the delay before that address gets an
 * answer (from `baseDelayMs` up to `maxDelayMs`), so guessing passwords gets slow. An address
 * forgets its failures after `forgetAfterMs` without one; at most `maxAddresses` are remembered.
 */
export interface FailedAttemptsOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  forgetAfterMs: number;
  maxAddresses: number;
  now?: () => number;
}

export class FailedAttempts {
  private readonly failures = new Map<string, { count: number; last: number }>();
  private readonly now: () => number;

  constructor(private readonly options: FailedAttemptsOptions) {
    this.now = options.now ?? Date.now;
  }

  /** How long to wait before answering a login from this address. */
  delayFor(address: string): number {
    const entry = this.failures.get(address);
    if (!entry) return 0;
    if (this.now() - entry.last > this.options.forgetAfterMs) {
      this.failures.delete(address);
      return 0;
    }
    return Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** (entry.count - 1));
  }

  failed(address: string): number {
    const entry = this.failures.get(address);
    const count = entry && this.now() - entry.last <= this.options.forgetAfterMs ? entry.count + 1 : 1;
    this.failures.delete(address); // re-insert: the Map's order is the least recently failed first
    this.failures.set(address, { count, last: this.now() });
    if (this.failures.size > this.options.maxAddresses) this.failures.delete(this.failures.keys().next().value!);
    return count;
  }

  succeeded(address: string): void {
    this.failures.delete(address);
  }
}
