import { levelsCover, levelsOf, type Levels } from '../protocol/mqtt.js';

/** The placeholders an ACL topic may use: the client's own username and client id. */
export const ACL_PLACEHOLDER = /\{(username|clientId)\}/g;

export type AclAction = 'publish' | 'subscribe';

export interface AclEntrySettings {
  readonly allow?: AclAction | readonly AclAction[] | undefined;
  readonly deny?: AclAction | readonly AclAction[] | undefined;
  readonly topic: string;
  readonly users?: readonly string[] | undefined;
}

export interface AclIdentity {
  readonly clientId: string;
  readonly username: string | undefined;
}

type Placeholder = 'username' | 'clientId';

/**
 * A level of an entry's topic that names a placeholder, split by `String.split` with a capture:
 * literal text at even indexes, placeholder names at odd ones (`a{username}b` -> `a`, `username`, `b`).
 */
type TemplateLevel = readonly string[];

interface CompiledEntry {
  readonly allow: boolean;
  readonly actions: ReadonlySet<AclAction>;
  readonly users: ReadonlySet<string> | null;
  /** The filter's levels; a level is a template when it names {username} or {clientId}. */
  readonly levels: readonly (string | TemplateLevel)[];
  readonly hasPlaceholder: boolean;
}

/** Characters that would widen or break a filter if a placeholder's value held them: a level separator, the wildcards, U+0000. */
const UNSAFE_CHARACTERS = ['/', '+', '#', '\u0000'];

/**
 * Per-client topic access. An entry applies to a request when it lists the action, names the
 * client's username in `users` (if it has `users`), and its topic covers the whole filter asked
 * for: every topic the filter matches, the entry's topic matches too. For a topic name (a PUBLISH,
 * a will, a delivery) covering is matching. Entries are tried in order and the first that applies
 * decides, allow or deny; when none applies the request is denied. A topic that starts with `+`
 * or `#` covers no topic or filter that starts with `$` [MQTT-4.7.2-1].
 *
 * An entry whose topic only overlaps a SUBSCRIBE filter (some topics of the filter are in it,
 * others not) does not apply to that SUBSCRIBE: under a deny of `devices/+/secrets/#`, a later
 * allow of `#` grants `devices/#`, and each message is then checked by its topic name when it is
 * delivered (`canSubscribe` with the topic), where the deny applies to `devices/d1/secrets/key`.
 *
 * `{username}` and `{clientId}` in a topic stand for the client's own; an identity that is absent
 * or holds a `/`, `+`, `#` or U+0000 never matches a placeholder, so it cannot widen a filter.
 */
export class Acl {
  private readonly entries: readonly CompiledEntry[];

  constructor(entries: readonly AclEntrySettings[]) {
    this.entries = entries.map(compile);
  }

  canPublish(identity: AclIdentity, topic: string): boolean {
    return this.decide(identity, 'publish', levelsOf(topic));
  }

  canSubscribe(identity: AclIdentity, filter: string): boolean {
    return this.decide(identity, 'subscribe', levelsOf(filter));
  }

  private decide(identity: AclIdentity, action: AclAction, requested: Levels): boolean {
    let values: Record<Placeholder, string | null> | undefined;
    for (const entry of this.entries) {
      if (!entry.actions.has(action)) continue;
      if (entry.users && (identity.username === undefined || !entry.users.has(identity.username))) continue;
      let levels: Levels;
      if (entry.hasPlaceholder) {
        values ??= { username: safeValue(identity.username), clientId: safeValue(identity.clientId) };
        const expanded = expand(entry.levels, values);
        if (expanded === null) continue;
        levels = expanded;
      } else {
        levels = entry.levels as readonly string[];
      }
      if (levelsCover(levels, requested)) return entry.allow;
    }
    return false;
  }
}

function safeValue(value: string | undefined): string | null {
  return value === undefined || value === '' || UNSAFE_CHARACTERS.some((character) => value.includes(character)) ? null : value;
}

/** The entry's levels for this identity, or null when a placeholder it names has no safe value. */
function expand(levels: readonly (string | TemplateLevel)[], values: Record<Placeholder, string | null>): string[] | null {
  const expanded: string[] = [];
  for (const level of levels) {
    if (typeof level === 'string') {
      expanded.push(level);
      continue;
    }
    let text = '';
    for (let i = 0; i < level.length; i++) {
      if (i % 2 === 0) {
        text += level[i];
        continue;
      }
      const value = values[level[i] as Placeholder];
      if (value === null) return null;
      text += value;
    }
    expanded.push(text);
  }
  return expanded;
}

function compile(entry: AclEntrySettings): CompiledEntry {
  const listed = entry.allow ?? entry.deny ?? [];
  const actions = new Set<AclAction>(typeof listed === 'string' ? [listed] : listed);
  const levels = levelsOf(entry.topic).map((level): string | TemplateLevel => {
    const parts = level.split(ACL_PLACEHOLDER); // split keeps the captured names
    return parts.length === 1 ? level : parts;
  });
  return {
    allow: entry.allow !== undefined,
    actions,
    users: entry.users ? new Set(entry.users) : null,
    levels,
    hasPlaceholder: levels.some((level) => typeof level !== 'string'),
  };
}
