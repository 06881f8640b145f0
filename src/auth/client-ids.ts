/** The placeholder a client id pattern may use (and `*`, any run of characters). */
export const CLIENT_ID_PLACEHOLDER = '{username}';

/** An entry of `auth.clientIds`: a pattern, for every user or for some. */
export type ClientIdEntry = string | { readonly pattern: string; readonly users?: readonly string[] | undefined };

/** A pattern in pieces: literal text, the username, or the wildcard. */
type Token = { readonly text: string } | 'username' | '*';

interface CompiledEntry {
  readonly tokens: readonly Token[];
  readonly namesUser: boolean;
  readonly users: ReadonlySet<string> | null;
}

/**
 * `auth.clientIds`: which client ids a user may connect with. A pattern is literal text, `*`
 * (any run of characters, none included) and `{username}` (the user's own name); the first
 * entry that applies to the user and matches allows the id. An anonymous client matches no
 * pattern that names `{username}`.
 */
export class ClientIdPolicy {
  private readonly entries: readonly CompiledEntry[];

  constructor(entries: readonly ClientIdEntry[]) {
    this.entries = entries.map(compile);
  }

  allows(username: string | undefined, clientId: string): boolean {
    return this.entries.some((entry) => (entry.users === null || (username !== undefined && entry.users.has(username))) && matches(entry, username, clientId));
  }
}

function compile(entry: ClientIdEntry): CompiledEntry {
  const pattern = typeof entry === 'string' ? entry : entry.pattern;
  const users = typeof entry === 'string' || entry.users === undefined ? null : new Set(entry.users);
  const tokens: Token[] = [];
  pattern.split(CLIENT_ID_PLACEHOLDER).forEach((part, index) => {
    if (index > 0) tokens.push('username');
    part.split('*').forEach((text, textIndex) => {
      if (textIndex > 0) tokens.push('*');
      if (text !== '') tokens.push({ text });
    });
  });
  return { tokens, namesUser: tokens.includes('username'), users };
}

function matches(entry: CompiledEntry, username: string | undefined, clientId: string): boolean {
  if (entry.namesUser && (username === undefined || username === '')) return false;
  // The literal runs between the wildcards, with the username put in: `{username}-*` for
  // alice is the runs 'alice-' and '' around one wildcard.
  const runs: string[] = [];
  let run = '';
  for (const token of entry.tokens) {
    if (token === '*') {
      runs.push(run);
      run = '';
    } else {
      run += token === 'username' ? username : token.text;
    }
  }
  runs.push(run);
  return globMatches(runs, clientId);
}

/** Whether `text` is runs[0] + anything + runs[1] + anything + ... + runs[n-1]. */
function globMatches(runs: readonly string[], text: string): boolean {
  const first = runs[0]!;
  if (runs.length === 1) return text === first;
  const last = runs[runs.length - 1]!;
  if (text.length < first.length + last.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  const end = text.length - last.length;
  for (let i = 1; i < runs.length - 1; i++) {
    const found = text.indexOf(runs[i]!, at);
    if (found === -1 || found + runs[i]!.length > end) return false;
    at = found + runs[i]!.length;
  }
  return true;
}
