/** A change of this instance's filters, to announce to the others. */
export interface RouteChanges {
  readonly added: string[];
  readonly removed: string[];
}

/**
 * This instance's filters: the local listeners of each (several clients can subscribe to one
 * filter; the filter is a route while one of them holds it), and which of them the other
 * instances have been told of. Only what changed since the last announcement is looked at.
 */
export class LocalRoutes {
  private readonly listeners = new Map<string, Set<unknown>>();
  /** The filters as last announced (assumed stored; a failed announcement is followed by a full one). */
  private readonly announced = new Set<string>();
  private readonly touched = new Set<string>();

  /** Adds a listener of `filter`; true when the filter was held by none before. */
  add(filter: string, listener: unknown): boolean {
    let held = this.listeners.get(filter);
    const first = held === undefined;
    if (!held) this.listeners.set(filter, (held = new Set()));
    held.add(listener);
    if (first) this.touched.add(filter);
    return first;
  }

  /** Removes a listener of `filter`; true when it was the last. A listener never added changes nothing. */
  remove(filter: string, listener: unknown): boolean {
    const held = this.listeners.get(filter);
    if (!held?.delete(listener) || held.size > 0) return false;
    this.listeners.delete(filter);
    this.touched.add(filter);
    return true;
  }

  /** The changes since the last call (or since `takeAll`), now counted as announced. */
  takeChanges(): RouteChanges {
    const added: string[] = [];
    const removed: string[] = [];
    for (const filter of this.touched) {
      const held = this.listeners.has(filter);
      if (held && !this.announced.has(filter)) {
        added.push(filter);
        this.announced.add(filter);
      } else if (!held && this.announced.has(filter)) {
        removed.push(filter);
        this.announced.delete(filter);
      }
    }
    this.touched.clear();
    return { added, removed };
  }

  /** Every filter held, now counted as announced (a full registration). */
  takeAll(): string[] {
    this.touched.clear();
    this.announced.clear();
    for (const filter of this.listeners.keys()) this.announced.add(filter);
    return [...this.announced];
  }

  /** Whether a change waits to be announced. */
  get changed(): boolean {
    return this.touched.size > 0;
  }

  /** Filters held now. */
  get size(): number {
    return this.listeners.size;
  }
}
