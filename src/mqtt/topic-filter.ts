/**
 * MQTT topic filters compared level by level. Callers split a topic or filter once (`levelsOf`)
 * and keep the levels: a filter held for many comparisons (an ACL entry, a subscription) is not
 * split again for each. `+` is one level, a final `#` zero or more levels, and [MQTT-4.7.2-1] a
 * leading wildcard matches no topic that starts with `$`.
 */
export type Levels = readonly string[];

export function levelsOf(topicOrFilter: string): string[] {
  return topicOrFilter.split('/');
}

const isWildcard = (level: string | undefined): boolean => level === '+' || level === '#';

/** [MQTT-4.7.2-1]: one side starts with a `$` level, the other with a wildcard. */
function dollarMismatch(a: Levels, b: Levels): boolean {
  return (a[0]!.startsWith('$') && isWildcard(b[0])) || (b[0]!.startsWith('$') && isWildcard(a[0]));
}

/** Whether the topic name matches the filter. */
export function levelsMatch(filter: Levels, topic: Levels): boolean {
  if (topic[0]!.startsWith('$') && isWildcard(filter[0])) return false;
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i];
    if (level === '#') return true; // [MQTT-4.7.1-2] also the parent level: "a/#" matches "a"
    if (i >= topic.length) return false;
    if (level !== '+' && level !== topic[i]) return false;
  }
  return filter.length === topic.length;
}

/** Whether every topic `inner` matches is matched by `outer` (`inner` is no broader). */
export function levelsCover(outer: Levels, inner: Levels): boolean {
  if (inner[0]!.startsWith('$') && isWildcard(outer[0])) return false;
  for (let i = 0; i < outer.length; i++) {
    const level = outer[i];
    if (level === '#') return true;
    if (i >= inner.length) return false;
    if (inner[i] === '#') return false;
    if (level === '+') continue;
    if (level !== inner[i]) return false;
  }
  return outer.length === inner.length;
}

/** Whether some topic name matches both filters. */
export function levelsOverlap(a: Levels, b: Levels): boolean {
  if (dollarMismatch(a, b)) return false;
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') return true; // covers the parent level too: "a/#" and "a" share "a"
    if (x === undefined || y === undefined) return x === y;
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
}

export function filterCovers(outer: string, inner: string): boolean {
  return levelsCover(levelsOf(outer), levelsOf(inner));
}

export function filtersOverlap(a: string, b: string): boolean {
  return levelsOverlap(levelsOf(a), levelsOf(b));
}

/**
 * Whether a SUBSCRIBE or UNSUBSCRIBE filter is well formed: at least one character
 * [MQTT-4.7.3-1], `#` only as the whole last level [MQTT-4.7.1-2] and `+` only as a whole level
 * [MQTT-4.7.1-3]. (aedes lets `a+`, `+a` and `a#` through.)
 */
export function isWellFormedFilter(filter: string): boolean {
  if (filter.length === 0) return false;
  const levels = levelsOf(filter);
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level === '+' || (level === '#' && i === levels.length - 1)) continue;
    if (level.includes('+') || level.includes('#')) return false;
  }
  return true;
}
