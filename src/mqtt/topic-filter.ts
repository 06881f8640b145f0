/**
 * Whether an MQTT topic name matches a subscription filter: `+` one level, a final `#` zero or
 * more levels, and [MQTT-4.7.2-1] no leading wildcard matches a topic that starts with `$`.
 */
export function filterMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const filterLevels = filter.split('/');
  const topicLevels = topic.split('/');
  for (let i = 0; i < filterLevels.length; i++) {
    const level = filterLevels[i];
    if (level === '#') return true; // [MQTT-4.7.1-2] also the parent level: "a/#" matches "a"
    if (i >= topicLevels.length) return false;
    if (level !== '+' && level !== topicLevels[i]) return false;
  }
  return filterLevels.length === topicLevels.length;
}
