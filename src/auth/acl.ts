import { filterMatches } from '../mqtt/topic-filter.js';

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

interface CompiledEntry {
  readonly allow: boolean;
  readonly actions: ReadonlySet<AclAction>;
  readonly users: ReadonlySet<string> | null;
  /** The topic filter, or a function of the identity when it names {username} or {clientId}. */
  readonly filter: string | ((identity: AclIdentity) => string | null);
}

/** The placeholders an ACL topic may use. */
export const ACL_PLACEHOLDER = /\{(username|clientId)\}/g;

/**
 * Per-client topic access: entries are tried in order and the first whose action, users and
 * topic match decides (allow or deny); with an ACL, what no entry allows is denied. `{username}`
 * and `{clientId}` in a topic stand for the client's own; an identity that is absent or holds a
 * `/`, `+`, `#` or U+0000 never matches a placeholder, so it cannot widen a filter.
 */
export class Acl {
  private readonly entries: readonly CompiledEntry[];

  constructor(entries: readonly AclEntrySettings[]) {
    this.entries = entries.map(compile);
  }

  canPublish(identity: AclIdentity, topic: string): boolean {
    return this.decide(identity, 'publish', (filter) => filterMatches(filter, topic));
  }

  canSubscribe(identity: AclIdentity, filter: string): boolean {
    return this.decide(identity, 'subscribe', (allowed) => filterCovers(allowed, filter));
  }

  private decide(identity: AclIdentity, action: AclAction, matches: (filter: string) => boolean): boolean {
    for (const entry of this.entries) {
      if (!entry.actions.has(action)) continue;
      if (entry.users && (identity.username === undefined || !entry.users.has(identity.username))) continue;
      const filter = typeof entry.filter === 'string' ? entry.filter : entry.filter(identity);
      if (filter !== null && matches(filter)) return entry.allow;
    }
    return false;
  }
}

function compile(entry: AclEntrySettings): CompiledEntry {
  const listed = entry.allow ?? entry.deny ?? [];
  const actions = new Set<AclAction>(typeof listed === 'string' ? [listed] : listed);
  const topic = entry.topic;
  const filter = /\{(username|clientId)\}/.test(topic)
    ? (identity: AclIdentity) => {
        let unsafe = false;
        const expanded = topic.replace(ACL_PLACEHOLDER, (_match, name: 'username' | 'clientId') => {
          const value = identity[name];
          if (value === undefined || value === '' || /[/+#\u0000]/.test(value)) unsafe = true;
          return value ?? '';
        });
        return unsafe ? null : expanded;
      }
    : topic;
  return { allow: entry.allow !== undefined, actions, users: entry.users ? new Set(entry.users) : null, filter };
}

/**
 * Whether every topic a subscription `filter` can match is matched by `allowed`: the filter is
 * no broader than what the ACL grants (a `#` or `+` in the filter needs one in `allowed` there).
 */
export function filterCovers(allowed: string, filter: string): boolean {
  if (filter.startsWith('$') && (allowed.startsWith('+') || allowed.startsWith('#'))) return false;
  const grant = allowed.split('/');
  const asked = filter.split('/');
  for (let i = 0; i < grant.length; i++) {
    const level = grant[i];
    if (level === '#') return true;
    if (i >= asked.length) return false;
    if (asked[i] === '#') return false;
    if (level === '+') continue;
    if (level !== asked[i]) return false;
  }
  return grant.length === asked.length;
}
