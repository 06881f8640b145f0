import type { RemoteRoutes } from './remote-routes.js';

/**
 * A change of one instance's routes, as announced on the routes channel. Each instance numbers
 * its changes (`version`, growing for as long as the instance lives): a follower applies a change
 * only on top of the one before it, and reads the instance's whole set instead when it missed one.
 */
export interface RouteNotice {
  readonly instance: string;
  readonly version: number;
  readonly added?: readonly string[];
  readonly removed?: readonly string[];
  /** The instance (re)registered all its routes at once: read them. */
  readonly reset?: boolean;
  /** The instance left, or its heartbeat expired: its routes are gone. */
  readonly gone?: boolean;
}

/** One instance's routes as stored, read atomically with their version. */
export interface RouteSnapshot {
  readonly version: number;
  readonly filters: readonly string[];
}

interface Followed {
  /** The last change applied (or the snapshot's), or -1 when none is known yet. */
  version: number;
  /** The read under way, if any; notices arriving meanwhile wait in `queued`. */
  reading: Promise<void> | null;
  readAgain: boolean;
  queued: RouteNotice[];
}

/**
 * Keeps `RemoteRoutes` in step with the other instances: applies their notices in order, and
 * reads an instance's whole set (`read`) when it registers anew, when a notice is missing, and
 * on `resync` (at start and after the notices' connection came back).
 */
export class RouteFollower {
  private readonly followed = new Map<string, Followed>();

  constructor(
    private readonly routes: RemoteRoutes,
    /** This instance's id: its own notices are not followed. */
    private readonly self: string,
    /** Reads an instance's routes, or null when it is not registered. */
    private readonly read: (instance: string) => Promise<RouteSnapshot | null>,
    /** A read that failed (Redis away); the next resync repairs it. */
    private readonly onReadFailed: (instance: string, error: unknown) => void,
  ) {}

  notice(notice: RouteNotice): void {
    if (notice.instance === this.self) return;
    const state = this.stateOf(notice.instance);
    if (state.reading) {
      state.queued.push(notice);
      return;
    }
    if (!this.apply(notice.instance, state, notice)) void this.refresh(notice.instance).catch(() => {});
    else if (notice.gone) this.followed.delete(notice.instance);
  }

  /** Reads the routes of every instance listed and every instance known; rejects if a read failed. */
  async resync(listed: Iterable<string>): Promise<void> {
    const instances = new Set([...listed, ...this.followed.keys(), ...this.routes.instances()]);
    instances.delete(this.self);
    const results = await Promise.allSettled([...instances].map((instance) => this.refresh(instance)));
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Reads an instance's routes, then applies the notices that came meanwhile. */
  private refresh(instance: string): Promise<void> {
    const state = this.stateOf(instance);
    if (state.reading) {
      state.readAgain = true;
      return state.reading;
    }
    const reading = (async () => {
      do {
        state.readAgain = false;
        let snapshot: RouteSnapshot | null;
        try {
          snapshot = await this.read(instance);
        } catch (error) {
          this.onReadFailed(instance, error);
          state.queued = [];
          throw error;
        }
        if (snapshot === null) {
          this.routes.drop(instance);
        } else if (snapshot.version >= state.version) {
          this.routes.replace(instance, snapshot.filters);
          state.version = snapshot.version;
        }
        const queued = state.queued;
        state.queued = [];
        for (const notice of queued) {
          if (this.apply(instance, state, notice)) continue;
          state.readAgain = true;
          break;
        }
      } while (state.readAgain);
    })();
    state.reading = reading;
    return reading.finally(() => {
      state.reading = null;
      if (!this.routes.has(instance) && state.queued.length === 0) this.followed.delete(instance);
    });
  }

  /** Applies a notice in order; false when the instance's set must be read instead. */
  private apply(instance: string, state: Followed, notice: RouteNotice): boolean {
    // An instance's versions go on growing when it registers again after being taken for dead,
    // so a `gone` older than what is known is from before that; a `gone` carries the version it
    // was at, so one equal to what is known is news.
    if (notice.gone) {
      if (notice.version < state.version) return true;
      this.routes.drop(instance);
      state.version = notice.version;
      return true;
    }
    if (notice.version <= state.version) return true; // already in what was read
    if (notice.reset || notice.version !== state.version + 1) return false;
    this.routes.know(instance);
    for (const filter of notice.added ?? []) this.routes.add(instance, filter);
    for (const filter of notice.removed ?? []) this.routes.remove(instance, filter);
    state.version = notice.version;
    return true;
  }

  private stateOf(instance: string): Followed {
    let state = this.followed.get(instance);
    if (!state) this.followed.set(instance, (state = { version: -1, reading: null, readAgain: false, queued: [] }));
    return state;
  }
}
