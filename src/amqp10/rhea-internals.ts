import { createRequire } from 'node:module';
import rhea, { type Delivery, type Sender, type Session } from 'rhea';
import { BridgeError } from '../errors.js';

/**
 * The one place that relies on rhea beyond its typed API: its client SASL mechanism list (rhea
 * picks a mechanism from the URL's user and password on its own, and never ANONYMOUS without a
 * user name nor EXTERNAL without a flag), a sender's credit and delivery count, the shape of a received body (a data section is a
 * `Section` with `typecode` 0x75 and `content`; an amqp-value is the value itself), and where a
 * peer's error condition sits on a delivery's outcome and on a link.
 */

export type SaslMechanism = 'PLAIN' | 'ANONYMOUS' | 'EXTERNAL';

interface ClientMechanisms {
  enable_plain(username: string, password: string): void;
  enable_anonymous(name?: string): void;
  enable_external(): void;
}

/** AMQP 1.0 section codes [AMQP 1.0, 3.2.6 and 3.2.8]. */
const DATA_SECTION = 0x75;

/** rhea's `sasl_mechanisms` connection option offering exactly one mechanism. */
export function saslMechanisms(mechanism: SaslMechanism, username: string, password: string): unknown {
  const mechanisms = rhea.sasl.client_mechanisms() as unknown as ClientMechanisms;
  if (mechanism === 'PLAIN') mechanisms.enable_plain(username, password);
  else if (mechanism === 'EXTERNAL') mechanisms.enable_external();
  else mechanisms.enable_anonymous(username === '' ? undefined : username);
  return mechanisms;
}

/** A body of one data section holding exactly these bytes [AMQP 1.0, 3.2.6]. */
export function dataSection(bytes: Buffer): unknown {
  return rhea.message.data_section(bytes);
}

/**
 * The bytes of a received body: its data section(s) joined, or an amqp-value that is binary or
 * a string (UTF-8); null for anything else (an amqp-sequence, a map, a number...).
 */
export function bodyBytes(body: unknown): Buffer | null {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body === undefined || body === null) return body === undefined ? Buffer.alloc(0) : null;
  const section = body as { typecode?: unknown; content?: unknown; multiple?: unknown };
  if (section.typecode !== DATA_SECTION) return null;
  if (section.multiple === true && Array.isArray(section.content)) {
    return section.content.every((part) => Buffer.isBuffer(part)) ? Buffer.concat(section.content) : null;
  }
  return Buffer.isBuffer(section.content) ? section.content : null;
}

/**
 * A sender's link credit and the transfers it has written [AMQP 1.0, 2.6.7]. rhea takes a send
 * beyond the credit and keeps it until credit comes, and takes the credit only when it writes
 * the transfer (later in the turn): `sendable()` stays true while a loop sends, so the bridge
 * counts what it handed over itself and sets it against these.
 */
export function senderCredit(sender: Sender): { readonly credit: number; readonly written: number } {
  const link = sender as unknown as { credit?: unknown; delivery_count?: unknown };
  return { credit: typeof link.credit === 'number' ? link.credit : 0, written: typeof link.delivery_count === 'number' ? link.delivery_count : 0 };
}

/**
 * Ends the session of a link the peer closed, once rhea has answered the peer's detach (it does
 * on the next tick): ended first, the detach would come on a session the peer no longer knows,
 * and a peer may close the whole connection for that.
 */
export function endSessionLater(session: Session): void {
  setImmediate(() => {
    if (!session.is_closed()) session.close();
  });
}

/** A peer's error condition [AMQP 1.0, 2.8.14]: `amqp:not-found` and its description. */
export interface PeerError {
  readonly condition: string;
  readonly description: string;
}

function asPeerError(error: unknown): PeerError | null {
  if (!error || typeof error !== 'object') return null;
  const { condition, description } = error as { condition?: unknown; description?: unknown };
  if (condition === undefined && description === undefined) return null;
  return { condition: typeof condition === 'string' ? condition : '', description: typeof description === 'string' ? description : '' };
}

/** The error condition the peer gave with a delivery's outcome (rejected carries one; modified and released do not). */
export function outcomeError(delivery: Delivery): PeerError | null {
  return asPeerError((delivery.remote_state as { error?: unknown } | undefined)?.error);
}

/** The error condition of a link or connection the peer closed (its `error`, as rhea keeps it). */
export function endpointError(endpoint: { error?: unknown } | undefined): PeerError | null {
  return asPeerError(endpoint?.error);
}

/** One line for logs: `amqp:not-found: no such exchange`. */
export function describePeerError(error: PeerError | null): string {
  if (!error) return 'no error condition given';
  return error.description === '' ? error.condition : `${error.condition}: ${error.description}`;
}

/**
 * Checks, without a network, that what this file relies on is there: fails the start with
 * BRIDGE_ERR_DEPENDENCY, naming the rhea version, when it is not.
 */
export function checkRheaInternals(): void {
  const missing: string[] = [];
  const mechanisms = rhea.sasl.client_mechanisms() as unknown as Partial<ClientMechanisms>;
  for (const name of ['enable_plain', 'enable_anonymous', 'enable_external'] as const) {
    if (typeof mechanisms[name] !== 'function') missing.push(`sasl.client_mechanisms().${name}`);
  }
  try {
    const bytes = Buffer.from([0, 1, 2, 255]);
    const decoded = rhea.message.decode(rhea.message.encode({ body: dataSection(bytes) }));
    if (!bodyBytes(decoded.body)?.equals(bytes)) missing.push('a data section decoded as { typecode: 0x75, content }');
  } catch (error) {
    missing.push(`message encode/decode (${(error as Error).message})`);
  }
  if (missing.length > 0) {
    throw new BridgeError('BRIDGE_ERR_DEPENDENCY', `rhea ${rheaVersion()} lacks what the bridge relies on: ${missing.join(', ')}`);
  }
}

function rheaVersion(): string {
  try {
    return (createRequire(import.meta.url)('rhea/package.json') as { version: string }).version;
  } catch {
    return '(unknown version)';
  }
}
