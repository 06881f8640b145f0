import { brokerReply } from './amqplib-internals.js';

/**
 * How the bridge treats an error from the AMQP side:
 * - `transient`: the connection or a channel went, or RabbitMQ had a passing problem (socket
 *   errors, heartbeat timeouts, an operation on a closing channel, 320 CONNECTION_FORCED,
 *   506 RESOURCE_ERROR, 541 INTERNAL_ERROR): retried soon, by reconnecting if need be.
 * - `configuration`: RabbitMQ refused what the configuration asks for (402 INVALID_PATH,
 *   403 ACCESS_REFUSED, 404 NOT_FOUND, 405 RESOURCE_LOCKED, 406 PRECONDITION_FAILED): retrying
 *   cannot cure it until someone changes the configuration or RabbitMQ, so it is reported once
 *   and retried slowly, and only what needs the refused exchange or queue waits.
 * - `protocol`: the bridge and RabbitMQ disagree about AMQP itself (501 FRAME_ERROR to
 *   505 UNEXPECTED_FRAME, 530 NOT_ALLOWED, 540 NOT_IMPLEMENTED): a bug, logged with its stack.
 */
export type AmqpErrorKind = 'transient' | 'configuration' | 'protocol';

export interface ClassifiedAmqpError {
  readonly kind: AmqpErrorKind;
  /** RabbitMQ's reply code, when RabbitMQ answered. */
  readonly code: number | null;
  /** RabbitMQ's reply text (`NOT_FOUND - no exchange 'x' in vhost '/'`), else the error's message. */
  readonly text: string;
}

// [AMQP 0-9-1, amqp0-9-1.xml: the reply-code constants] 403-406 are soft errors (the channel is
// closed), 402 and 501-541 hard errors (the connection is closed). 320 and 541 are the server's
// own doing, and 506 "may be retried later"; 311-313 are not raised as errors by RabbitMQ.
const CONFIGURATION_CODES: ReadonlySet<number> = new Set([402, 403, 404, 405, 406]);
const PROTOCOL_CODES: ReadonlySet<number> = new Set([501, 502, 503, 504, 505, 530, 540]);

/** The one classification of what amqplib and RabbitMQ report. */
export function classifyAmqpError(error: unknown): ClassifiedAmqpError {
  const reply = brokerReply(error);
  if (reply) {
    const kind = CONFIGURATION_CODES.has(reply.code) ? 'configuration' : PROTOCOL_CODES.has(reply.code) ? 'protocol' : 'transient';
    return { kind, code: reply.code, text: reply.text };
  }
  // Without a reply code: a socket error, a heartbeat timeout, an operation on a closed channel.
  return { kind: 'transient', code: null, text: error instanceof Error ? error.message : String(error) };
}

/** The exchange or queue a RabbitMQ reply text is about. */
export interface BrokerResource {
  readonly kind: 'exchange' | 'queue';
  readonly name: string;
}

// RabbitMQ names the resource as `exchange 'x' in vhost`, `queue 'q' in vhost`, `exchange name 'x' contains`.
const RESOURCE = /\b(exchange|queue)(?: name)? '(.*?)'(?= in vhost| contains)/;

/** Which exchange or queue RabbitMQ refused, as its reply text says; null when it names none. */
export function refusedResource(text: string): BrokerResource | null {
  const match = RESOURCE.exec(text);
  return match ? { kind: match[1] as BrokerResource['kind'], name: match[2]! } : null;
}

/** An argument RabbitMQ has with another value than the bridge declared. */
export interface InequivalentArgument {
  /** RabbitMQ's name for it: `durable`, `auto_delete`, `type`, `x-dead-letter-exchange`, ... */
  readonly name: string;
  /** What the bridge declared. */
  readonly declared: string;
  /** What RabbitMQ has. */
  readonly current: string;
}

const INEQUIVALENT = /inequivalent arg '([^']*)' for (?:exchange|queue) '.*' in vhost '.*': received (.*) but current is (.*)$/s;

/** The argument of a `406 PRECONDITION_FAILED - inequivalent arg ...` reply; null for other replies. */
export function inequivalentArgument(text: string): InequivalentArgument | null {
  const match = INEQUIVALENT.exec(text);
  return match ? { name: match[1]!, declared: argumentValue(match[2]!), current: argumentValue(match[3]!) } : null;
}

/** `'true'`, `the value 'x' of type 'longstr'` or `none`, as RabbitMQ words a value, made plain. */
function argumentValue(worded: string): string {
  const quoted = /^'(.*)'$/s.exec(worded) ?? /^the value '(.*)' of type '[^']*'$/s.exec(worded);
  return quoted ? quoted[1]! : worded;
}
