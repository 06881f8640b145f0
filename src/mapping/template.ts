import { MappingError, RenderError } from '../errors.js';
import type { CompiledPattern } from './pattern.js';

/** What a template is rendered from: the matched topic (uplink) or routing key (downlink) and the message. */
export interface TemplateContext {
  /** The matched topic levels (uplink) or routing-key words (downlink): `source` split at the pattern's separator. */
  readonly segments: readonly string[];
  /** The whole topic (uplink) or routing key (downlink). */
  readonly source: string;
  readonly clientId?: string;
  readonly username?: string | undefined;
  readonly qos?: number;
  /** The exchange (AMQP 0-9-1) or the address (AMQP 1.0) a delivery came from. */
  readonly exchange?: string;
  readonly headers?: Readonly<Record<string, unknown>> | undefined;
}

/** A built-in placeholder: how to read it, and whether it is derived from the pattern's source. */
export interface Builtin {
  read(context: TemplateContext): string;
  /** True for `{topic}` / `{routingKey}`: re-encoded like captures when the target is the other side. */
  fromSource: boolean;
}

export const UPLINK_BUILTINS: ReadonlyMap<string, Builtin> = new Map([
  ['clientId', { read: (c: TemplateContext) => c.clientId ?? '', fromSource: false }],
  ['username', { read: (c: TemplateContext) => c.username ?? '', fromSource: false }],
  ['topic', { read: (c: TemplateContext) => c.source, fromSource: true }],
  ['qos', { read: (c: TemplateContext) => String(c.qos ?? 0), fromSource: false }],
]);

export const DOWNLINK_BUILTINS: ReadonlyMap<string, Builtin> = new Map([
  ['routingKey', { read: (c: TemplateContext) => c.source, fromSource: true }],
  ['exchange', { read: (c: TemplateContext) => c.exchange ?? '', fromSource: false }],
]);

/** The same two for an AMQP 1.0 rule: the message's subject and the address it came from. */
export const ADDRESS_DOWNLINK_BUILTINS: ReadonlyMap<string, Builtin> = new Map([
  ['subject', { read: (c: TemplateContext) => c.source, fromSource: true }],
  ['address', { read: (c: TemplateContext) => c.exchange ?? '', fromSource: false }],
]);

export interface TemplateScope {
  /** The rule field, for error messages (`routingKey`, `headers.x-device-id`). */
  field: string;
  pattern: CompiledPattern;
  builtins: ReadonlyMap<string, Builtin>;
  /** Whether `{headers.NAME}` may be used (downlink). */
  headers: boolean;
  /**
   * Re-encodes values taken from the pattern's source (captures, `{#}`, `{topic}`, `{routingKey}`)
   * for the target: the `.`/`/` swap when a topic value goes into a routing key or back; null
   * keeps them as they are (exchange names, header values).
   */
  encode: ((value: string) => string) | null;
  /** The target's separator: a separator next to a `{#}` that captured nothing is dropped. */
  targetSeparator: '.' | '/' | null;
}

export type Render = (context: TemplateContext) => string;

export interface CompiledTemplate {
  readonly source: string;
  readonly render: Render;
  /** The value when the template has no placeholder, so it need not be rendered per message. */
  readonly constant: string | null;
  readonly placeholders: readonly string[];
}

type Part =
  | { kind: 'text'; text: string }
  | { kind: 'value'; read: Render; name: string }
  | { kind: 'multi'; name: '#' };

function fail(scope: TemplateScope, source: string, message: string): never {
  throw new MappingError('BRIDGE_ERR_TEMPLATE_INVALID', scope.field, `${scope.field} "${source}": ${message}`);
}

function available(scope: TemplateScope): string {
  const names = [...scope.pattern.captures.keys()];
  if (scope.pattern.multiIndex >= 0) names.push('#');
  names.push(...scope.builtins.keys());
  if (scope.headers) names.push('headers.NAME');
  return names.map((name) => `{${name}}`).join(', ');
}

function parse(source: string, scope: TemplateScope): Part[] {
  const parts: Part[] = [];
  let text = '';
  for (let i = 0; i < source.length; i++) {
    const char = source[i]!;
    if (char === '{' && source[i + 1] === '{') {
      text += '{';
      i++;
    } else if (char === '}' && source[i + 1] === '}') {
      text += '}';
      i++;
    } else if (char === '}') {
      fail(scope, source, `unmatched "}" at position ${i + 1} (write "}}" for a literal brace)`);
    } else if (char === '{') {
      const close = source.indexOf('}', i + 1);
      if (close === -1) fail(scope, source, `unclosed "{" at position ${i + 1} (write "{{" for a literal brace)`);
      if (text) parts.push({ kind: 'text', text });
      text = '';
      parts.push(placeholder(source.slice(i + 1, close), source, scope));
      i = close;
    } else {
      text += char;
    }
  }
  if (text) parts.push({ kind: 'text', text });
  return parts;
}

function placeholder(name: string, source: string, scope: TemplateScope): Part {
  const encode = scope.encode;
  if (name === '#') {
    if (scope.pattern.multiIndex < 0) {
      fail(scope, source, `{#} is not available: the pattern "${scope.pattern.source}" has no final "#" (available: ${available(scope)})`);
    }
    return { kind: 'multi', name: '#' };
  }
  const index = scope.pattern.captures.get(name);
  if (index !== undefined) {
    const read: Render = encode ? (c) => encode(c.segments[index]!) : (c) => c.segments[index]!;
    return { kind: 'value', read, name };
  }
  const builtin = scope.builtins.get(name);
  if (builtin) {
    const read: Render = builtin.fromSource && encode ? (c) => encode(builtin.read(c)) : (c) => builtin.read(c);
    return { kind: 'value', read, name };
  }
  if (name.startsWith('headers.') && scope.headers) {
    const header = name.slice('headers.'.length);
    if (!header) fail(scope, source, '{headers.} needs a header name');
    return { kind: 'value', read: (c) => headerValue(c.headers, header), name };
  }
  return fail(scope, source, `{${name}} is not available here (available: ${available(scope)})`);
}

function headerValue(headers: Readonly<Record<string, unknown>> | undefined, name: string): string {
  const value = headers?.[name];
  if (value === undefined || value === null) throw new RenderError(`header "${name}" is missing`);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  throw new RenderError(`header "${name}" is not a string, number or boolean`);
}

export function compileTemplate(source: string, scope: TemplateScope): CompiledTemplate {
  const parts = parse(source, scope);
  const placeholders = parts.flatMap((part) => (part.kind === 'text' ? [] : [part.name]));
  if (parts.every((part) => part.kind === 'text')) {
    const constant = parts.map((part) => (part.kind === 'text' ? part.text : '')).join('');
    return { source, render: () => constant, constant, placeholders };
  }
  const multiStart = scope.pattern.multiIndex;
  const joinSeparator = scope.pattern.separator;
  const encode = scope.encode;
  const separator = scope.targetSeparator;
  const readMulti = (c: TemplateContext): string | null => {
    if (c.segments.length <= multiStart) return null; // `a/#` matched `a`: zero levels
    // The levels from `#` on, joined again, are the end of the source: taken from it, not rebuilt.
    let start = 0;
    for (let i = 0; i < multiStart; i++) start += c.segments[i]!.length + joinSeparator.length;
    const joined = start === 0 ? c.source : c.source.slice(start);
    return encode ? encode(joined) : joined;
  };
  const render: Render = (context) => {
    let out = '';
    let skipLeadingSeparator = false;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part.kind === 'text') {
        out += skipLeadingSeparator && part.text[0] === separator ? part.text.slice(1) : part.text;
        skipLeadingSeparator = false;
      } else if (part.kind === 'value') {
        out += part.read(context);
        skipLeadingSeparator = false;
      } else {
        const multi = readMulti(context);
        if (multi !== null) {
          out += multi;
        } else if (separator !== null && out.endsWith(separator) && parts[i - 1]?.kind === 'text') {
          // "{deviceId}.{#}" with nothing under "#" gives "dev1", not "dev1."
          out = out.slice(0, -1);
        } else {
          skipLeadingSeparator = out.length === 0; // "{#}.suffix" gives "suffix"
        }
      }
    }
    return out;
  };
  return { source, render, constant: null, placeholders };
}
