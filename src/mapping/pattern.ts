import { MappingError } from '../errors.js';

/**
 * A rule's matching pattern, split into segments: topic levels (uplink, separator `/`,
 * single wildcard `+`) or routing-key words (downlink, separator `.`, single wildcard `*`).
 * A segment is a literal, a single wildcard (anonymous, or `{name}` which also captures it)
 * or a final `#` that matches zero or more segments and is captured as `{#}`.
 */
export type Segment =
  | { kind: 'literal'; value: string }
  | { kind: 'single'; name: string | null }
  | { kind: 'multi' };

export interface CompiledPattern {
  readonly source: string;
  readonly separator: '/' | '.';
  readonly segments: readonly Segment[];
  /** Capture name -> segment index. */
  readonly captures: ReadonlyMap<string, number>;
  /** Index of the final `#`, or -1. */
  readonly multiIndex: number;
}

export interface PatternSyntax {
  separator: '/' | '.';
  singleWildcard: '+' | '*';
  /** Names a capture may not take because templates reserve them. */
  reserved: ReadonlySet<string>;
  /** The rule field the pattern comes from, for error messages. */
  field: string;
}

export const CAPTURE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function fail(syntax: PatternSyntax, source: string, message: string): never {
  throw new MappingError('BRIDGE_ERR_PATTERN_INVALID', syntax.field, `${syntax.field} "${source}": ${message}`);
}

export function compilePattern(source: string, syntax: PatternSyntax): CompiledPattern {
  if (source.length === 0) fail(syntax, source, 'a pattern must not be empty');
  const parts = source.split(syntax.separator);
  const segments: Segment[] = [];
  const captures = new Map<string, number>();
  let multiIndex = -1;
  parts.forEach((part, index) => {
    if (part === '#') {
      if (index !== parts.length - 1) fail(syntax, source, '"#" is only allowed as the last segment');
      multiIndex = index;
      segments.push({ kind: 'multi' });
      return;
    }
    if (part === syntax.singleWildcard) {
      segments.push({ kind: 'single', name: null });
      return;
    }
    if (part.startsWith('{') && part.endsWith('}')) {
      const name = part.slice(1, -1);
      if (name === '#') fail(syntax, source, 'write a final "#" to capture {#}, not "{#}"');
      if (!CAPTURE_NAME.test(name)) {
        fail(syntax, source, `"${part}" is not a capture: a name starts with a letter or "_" and holds letters, digits, "_" or "-"`);
      }
      if (syntax.reserved.has(name)) fail(syntax, source, `{${name}} is a built-in placeholder and cannot be captured`);
      if (captures.has(name)) fail(syntax, source, `{${name}} is captured twice`);
      captures.set(name, index);
      segments.push({ kind: 'single', name });
      return;
    }
    for (const forbidden of ['#', syntax.singleWildcard, '{', '}']) {
      if (part.includes(forbidden)) {
        fail(
          syntax,
          source,
          `segment "${part}" mixes "${forbidden}" with other characters; wildcards and captures must be a whole segment`,
        );
      }
    }
    if (part.includes('\u0000')) fail(syntax, source, 'a pattern must not contain U+0000');
    segments.push({ kind: 'literal', value: part });
  });
  return { source, separator: syntax.separator, segments, captures, multiIndex };
}

/**
 * Matches split segments against one compiled pattern; returns false or true.
 * `dollarGuard` applies [MQTT-4.7.2-1]: a leading wildcard does not match a topic starting with `$`.
 */
export function patternMatches(pattern: CompiledPattern, values: readonly string[], dollarGuard: boolean): boolean {
  const segments = pattern.segments;
  if (dollarGuard && values.length > 0 && values[0]!.startsWith('$') && segments[0]?.kind !== 'literal') return false;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.kind === 'multi') return true; // zero or more remaining segments
    if (i >= values.length) return false;
    if (segment.kind === 'literal' && segment.value !== values[i]) return false;
  }
  return values.length === segments.length;
}

/** The pattern with its captures as anonymous wildcards: an MQTT filter (`{name}` becomes `+`) or an AMQP binding key (`*`). */
export function filterOf(pattern: CompiledPattern): string {
  const single = pattern.separator === '/' ? '+' : '*';
  return pattern.segments
    .map((segment) => (segment.kind === 'literal' ? segment.value : segment.kind === 'multi' ? '#' : single))
    .join(pattern.separator);
}

/** The AMQP binding key for a downlink pattern: `{name}` becomes `*`. */
export function bindingKeyOf(pattern: CompiledPattern): string {
  return filterOf(pattern);
}
