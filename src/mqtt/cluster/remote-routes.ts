import { QlobberDedup, type QlobberOptions } from 'qlobber';

/** How aedes' own emitter (mqemitter 7) matches filters, so that both agree on every topic. */
export const MATCHER_OPTIONS: QlobberOptions = {
  separator: '/',
  wildcard_one: '+',
  wildcard_some: '#',
  // [MQTT-4.7.1-3]: `a/+` matches `a/`, `+/b` matches `/b`.
  match_empty_levels: true,
};

const NONE: ReadonlySet<string> = new Set();

/**
 * The other instances' filters, in memory: which instances a topic must be sent to. Matching
 * reads only this, so a publish no other instance wants costs a trie walk and no I/O.
 */
export class RemoteRoutes {
  /** Filters that start with a literal level. */
  private readonly literal = new QlobberDedup<string>(MATCHER_OPTIONS);
  /** Filters that start with `+` or `#`: they never match a topic that starts with `$` [MQTT-4.7.2-1]. */
  private readonly wildcard = new QlobberDedup<string>(MATCHER_OPTIONS);
  private readonly byInstance = new Map<string, Set<string>>();
  private filters = 0;

  /** The instances (other than this one) with a filter that matches `topic`; read it, do not change it. */
  match(topic: string): ReadonlySet<string> {
    if (this.filters === 0) return NONE;
    const literal = this.literal.match(topic);
    if (topic.startsWith('$')) return literal;
    const wildcard = this.wildcard.match(topic);
    if (wildcard.size === 0) return literal;
    if (literal.size === 0) return wildcard;
    // qlobber may return the set it holds for a filter: never change what it returns.
    const both = new Set(literal);
    for (const instance of wildcard) both.add(instance);
    return both;
  }

  add(instance: string, filter: string): void {
    let held = this.byInstance.get(instance);
    if (!held) this.byInstance.set(instance, (held = new Set()));
    if (held.has(filter)) return;
    // A filter aedes' matcher would refuse (too many levels) cannot come from a bridge; skip it rather than throw.
    try {
      this.matcherOf(filter).add(filter, instance);
    } catch {
      return;
    }
    held.add(filter);
    this.filters++;
  }

  remove(instance: string, filter: string): void {
    const held = this.byInstance.get(instance);
    if (!held?.delete(filter)) return;
    this.matcherOf(filter).remove(filter, instance);
    this.filters--;
  }

  /** Sets an instance's filters to exactly these. */
  replace(instance: string, filters: Iterable<string>): void {
    const wanted = new Set(filters);
    this.know(instance);
    for (const filter of [...(this.byInstance.get(instance) ?? [])]) if (!wanted.has(filter)) this.remove(instance, filter);
    for (const filter of wanted) this.add(instance, filter);
  }

  /** Forgets an instance and all its filters. */
  drop(instance: string): void {
    for (const filter of [...(this.byInstance.get(instance) ?? [])]) this.remove(instance, filter);
    this.byInstance.delete(instance);
  }

  /** The instances known, with or without filters. */
  instances(): string[] {
    return [...this.byInstance.keys()];
  }

  /** Makes an instance known (it then receives `$SYS` messages) before its filters are. */
  know(instance: string): void {
    if (!this.byInstance.has(instance)) this.byInstance.set(instance, new Set());
  }

  has(instance: string): boolean {
    return this.byInstance.has(instance);
  }

  filtersOf(instance: string): ReadonlySet<string> {
    return this.byInstance.get(instance) ?? NONE;
  }

  /** Filters over all other instances (one filter held by two instances counts twice). */
  get size(): number {
    return this.filters;
  }

  private matcherOf(filter: string): QlobberDedup<string> {
    return filter.startsWith('+') || filter.startsWith('#') ? this.wildcard : this.literal;
  }
}
