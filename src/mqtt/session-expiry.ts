import type { SessionStore } from './session-store.js';

export interface SessionExpiryOptions {
  readonly store: SessionStore;
  /** `mqtt.sessionExpirySeconds`, in milliseconds. */
  readonly expiryMs: number;
  /** Called for each session removed, with its client id. */
  readonly onExpired: (clientId: string) => void;
  /** A session could not be removed (clientId), or the expired ones could not be listed (undefined). */
  readonly onError: (clientId: string | undefined, error: unknown) => void;
  readonly now?: () => number;
}

/** How often offline sessions are looked at: a tenth of the expiry, within 1 s and 1 min. */
export function sweepIntervalMs(expiryMs: number): number {
  return Math.min(60_000, Math.max(1_000, Math.floor(expiryMs / 10)));
}

/**
 * Removes persistent sessions whose client has been away longer than the expiry: their
 * subscriptions (so nothing is queued for them any more), queued messages and QoS 2 state.
 */
export class SessionExpiry {
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<number> | null = null;
  private readonly now: () => number;

  constructor(private readonly options: SessionExpiryOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sweep(), sweepIntervalMs(this.options.expiryMs));
    this.timer.unref();
  }

  /** Stops sweeping; resolves once a sweep under way has finished. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping;
  }

  /** Removes what has expired now; resolves to how many sessions it removed. */
  sweep(): Promise<number> {
    this.sweeping ??= this.removeExpired().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  private async removeExpired(): Promise<number> {
    const { store, expiryMs, onExpired, onError } = this.options;
    let removed = 0;
    let expired: string[];
    try {
      expired = await store.registry.offlineSince(this.now() - expiryMs);
    } catch (error) {
      onError(undefined, error);
      return 0;
    }
    for (const clientId of expired) {
      // Forgotten first: a client that connects meanwhile starts a new session instead of
      // resuming this one. With several instances sweeping one registry, only one forgets it.
      let forgotten: boolean;
      try {
        forgotten = await store.registry.forget(clientId);
      } catch (error) {
        onError(clientId, error);
        continue;
      }
      if (!forgotten) continue;
      try {
        await store.removeSession(clientId);
        removed++;
        onExpired(clientId);
      } catch (error) {
        onError(clientId, error);
      }
    }
    return removed;
  }
}
