/**
 * What MQTT 3.1.1 itself says, as pure functions and constants: topic names and filters (their
 * levels, validity, matching, covering and overlap), packet sizes, and the return codes of
 * CONNACK and SUBACK. It imports nothing; config/, auth/, mapping/ and mqtt/ all build on it.
 */

// Packet sizes

/** The largest remaining length a fixed header can carry [MQTT-2.2.3]. */
export const MQTT_MAX_REMAINING_LENGTH = 268_435_455;
/** A fixed header: the type byte and at most four bytes of remaining length [MQTT-2.2.3]. */
export const MQTT_MAX_FIXED_HEADER_BYTES = 5;
/** [MQTT-1.5.3] a string (a topic, say) is at most 65,535 bytes of UTF-8. */
export const MQTT_MAX_STRING_BYTES = 65_535;

// Return codes

/** CONNACK return code 1 [MQTT-3.2.2-5]: the protocol level is not one the server speaks. */
export const UNACCEPTABLE_PROTOCOL_LEVEL = 1;
/** CONNACK return code 2: identifier rejected. */
export const IDENTIFIER_REJECTED = 2;
/** CONNACK return code 3 [MQTT-3.2.2-3]: the server is unavailable. */
export const SERVER_UNAVAILABLE = 3;
/** CONNACK return code 4: bad user name or password. */
export const BAD_USERNAME_OR_PASSWORD = 4;
/** CONNACK return code 5: not authorized. */
export const NOT_AUTHORIZED = 5;
/** SUBACK return code 0x80: the filter is refused [MQTT-3.9.3]. */
export const SUBACK_FAILURE = 0x80;

// Topic names and filters

/**
 * A topic or filter split into its levels. Callers split once (`levelsOf`) and keep the levels: a
 * filter held for many comparisons (an ACL entry, a subscription) is not split again for each.
 * `+` is one level, a final `#` zero or more levels, and [MQTT-4.7.2-1] a leading wildcard
 * matches no topic that starts with `$`.
 */
export type Levels = readonly string[];

export function levelsOf(topicOrFilter: string): string[] {
  return topicOrFilter.split('/');
}

/** How many levels a topic name or filter has, counted without splitting it. */
export function topicLevels(topic: string): number {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) levels++;
  return levels;
}

/**
 * U+0000 may not appear in a string [MQTT-1.5.3-2], and bytes that are not UTF-8 may not either
 * [MQTT-1.5.3-1]: the MQTT parser turns those into U+FFFD, so that is how they show by the time
 * the bridge sees a string.
 */
export function holdsForbiddenCharacters(text: string): boolean {
  return text.includes('\u0000') || text.includes('\ufffd');
}

/**
 * Why a string cannot be a topic name a device publishes on, or null: [MQTT-4.7.3-1] at least one
 * character, [MQTT-4.7.1-1] no wildcards, [MQTT-1.5.3-2] no U+0000, [MQTT-1.5.3] at most 65,535 bytes.
 */
export function topicNameProblem(topic: string): string | null {
  if (topic.length === 0) return 'a topic name must be at least one character long [MQTT-4.7.3-1]';
  if (topic.includes('+') || topic.includes('#')) return `topic name "${topic}" contains a wildcard; wildcards are only allowed in filters [MQTT-4.7.1-1]`;
  if (topic.includes('\u0000')) return 'a topic name must not contain U+0000 [MQTT-1.5.3-2]';
  if (Buffer.byteLength(topic, 'utf8') > MQTT_MAX_STRING_BYTES) return `topic name is longer than ${MQTT_MAX_STRING_BYTES} bytes [MQTT-1.5.3]`;
  return null;
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
