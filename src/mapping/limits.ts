import { RenderError } from '../errors.js';
import type { PatternSyntax } from './pattern.js';
import { DOWNLINK_BUILTINS, UPLINK_BUILTINS } from './template.js';

/** AMQP 0-9-1 short strings (exchange names, routing keys, most properties) hold at most 255 bytes. */
export const SHORTSTR_MAX_BYTES = 255;

/** Names a capture may not take, in either direction, so a template always reads the same. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([...UPLINK_BUILTINS.keys(), ...DOWNLINK_BUILTINS.keys(), 'headers']);

/** Uplink rules match MQTT topics: levels split by `/`, `+` for one level. */
export const TOPIC_SYNTAX: PatternSyntax = { separator: '/', singleWildcard: '+', reserved: RESERVED_NAMES, field: 'topic' };

/** Downlink rules match routing keys: words split by `.`, `*` for one word. */
export const ROUTING_KEY_SYNTAX: PatternSyntax = { separator: '.', singleWildcard: '*', reserved: RESERVED_NAMES, field: 'routingKey' };

export function assertShortString(what: string, value: string): void {
  // Cheap check first: a string of n UTF-16 units has at most 3n UTF-8 bytes.
  if (value.length * 3 <= SHORTSTR_MAX_BYTES) return;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > SHORTSTR_MAX_BYTES) {
    throw new RenderError(`the rendered ${what} is ${bytes} bytes long; AMQP allows at most ${SHORTSTR_MAX_BYTES}`);
  }
}
