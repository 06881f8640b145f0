/**
 * The one catalogue of coded errors. Every error the bridge raises carries a stable
 * `code` from this list; docs/errors.md documents each one (a test checks that).
 */
export const ERROR_CODES = {
  BRIDGE_ERR_CONFIG_READ: 'The configuration file could not be read.',
  BRIDGE_ERR_CONFIG_INVALID:
    'The configuration has problems (YAML syntax, schema, environment variables or templates); each is listed as FILE:LINE:COL: message.',
  BRIDGE_ERR_PATTERN_INVALID: 'A topic pattern or routing-key pattern in a rule is malformed.',
  BRIDGE_ERR_TEMPLATE_INVALID: 'A template in a rule is malformed or names a placeholder that is not available.',
  BRIDGE_ERR_RENDER:
    'A template rendered a value that AMQP or MQTT cannot carry (a routing key over 255 bytes, an invalid exchange name).',
  BRIDGE_ERR_TOPIC_INVALID: 'A topic given on the command line or by a device is not a valid MQTT topic name.',
  BRIDGE_ERR_PUBLISH_NACKED: 'RabbitMQ refused (nacked) a publish; the device is not acknowledged.',
  BRIDGE_ERR_PUBLISH_TIMEOUT: 'RabbitMQ did not confirm a publish within amqp.publishTimeoutMs; the device is not acknowledged.',
  BRIDGE_ERR_PUBLISH_ABANDONED:
    'A publish was in flight on too many AMQP channels that closed before confirming it; it is failed so that the device retransmits.',
  BRIDGE_ERR_PUBLISH_REJECTED:
    'The AMQP 1.0 broker settled a transfer as rejected (its error condition is logged); the device is not acknowledged and retransmits.',
  BRIDGE_ERR_PUBLISH_RELEASED: 'The AMQP 1.0 broker settled a transfer as released (not processed); the device is not acknowledged and retransmits.',
  BRIDGE_ERR_PUBLISH_MODIFIED: 'The AMQP 1.0 broker settled a transfer as modified (not processed); the device is not acknowledged and retransmits.',
  BRIDGE_ERR_ADDRESS_REFUSED:
    'The AMQP 1.0 broker refused to attach a link to an address (it does not exist, or the bridge may not use it): QoS 0 publishes to it are dropped and counted, QoS 1/2 ones wait (unacknowledged) until it is attached or they time out.',
  BRIDGE_ERR_PUBLISH_TOO_LARGE: 'A publish could not be encoded: its properties and headers do not fit in one AMQP frame, or a short string is over 255 bytes.',
  BRIDGE_ERR_EXCHANGE_REFUSED:
    'A QoS 0 publish was routed to an exchange RabbitMQ refuses (missing, declared with other arguments, or not allowed): it is dropped and counted.',
  BRIDGE_ERR_BROKER_REFUSED:
    'RabbitMQ refused an exchange or queue the configuration asks for (406 other arguments or type, 403 access refused, 404 missing, 405 locked): the rules that need it wait, everything else flows.',
  BRIDGE_ERR_PUBLISHER_CLOSED: 'The bridge is shutting down and no longer publishes to AMQP.',
  BRIDGE_ERR_RETAINED_LIMIT:
    'A retained publish was refused: it would take the retained messages past mqtt.maxRetainedMessages, maxRetainedBytes or their per-user limits.',
  BRIDGE_ERR_LOGIN_REFUSED:
    'A CONNECT was refused (CONNACK 2 to 5): identifier rejected, RabbitMQ unreachable, bad credentials, or not authorized.',
  BRIDGE_ERR_PUBLISH_REFUSED:
    "A device's PUBLISH was refused before it was forwarded: a $SYS/ topic, a topic over a limit, or one the ACL denies.",
  BRIDGE_ERR_QOS2_LIMIT: 'A QoS 2 PUBLISH was refused: its session holds mqtt.maxPendingQos2BytesPerSession of QoS 2 state already.',
  BRIDGE_ERR_PACKET_NOT_FOUND: 'aedes asked the session store for a packet id it does not hold (answered as MQTT says; never shown to users).',
  BRIDGE_ERR_SESSION_FILE: 'The session file (mqtt.sessionFile) is of a version this bridge cannot read.',
  BRIDGE_ERR_TLS_FILE: "A TLS listener's certificate, key or CA file could not be read or used.",
  BRIDGE_ERR_HTTP_LISTEN: 'The metrics and health endpoint could not bind http.host:http.port.',
  BRIDGE_ERR_INTERNAL: "A check of the bridge's own consistency failed: a bug.",
  BRIDGE_ERR_LISTEN: 'An MQTT listener could not bind its address.',
  BRIDGE_ERR_USAGE: 'The command line is not valid.',
  BRIDGE_ERR_WORKER_START: 'A worker of `run --workers N` ended before it ran (its own log lines say why); the run stops.',
  BRIDGE_ERR_STATE: 'The bridge cannot do what was asked in the state it is in (start it twice, reload it while it stops).',
  BRIDGE_ERR_CLUSTER_UNAVAILABLE:
    'Redis, which carries the routes and the messages between bridge instances, could not be reached: at start, or for a downlink message that a device on another instance subscribes to.',
  BRIDGE_ERR_DEPENDENCY: 'An installed library lacks an internal the bridge relies on (another version than package.json names).',
  BRIDGE_ERR_REDIS:
    'Redis (mqtt.persistence type redis) could not be reached at start, or could not store or read the MQTT state: what needed it is refused or not acknowledged, and the bridge recovers when Redis answers again.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BridgeError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * What the session stores answer, as aedes' own persistence does, for a packet id they do not
 * hold. aedes asks that for every new QoS 2 publish (is it a resend?), so the answer is made
 * without a stack trace: capturing one per publish was a tenth of the bridge's CPU under QoS 2.
 */
export function packetNotFound(): BridgeError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new BridgeError('BRIDGE_ERR_PACKET_NOT_FOUND', 'no such packet');
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** A position in a configuration file, 1-based. */
export interface SourcePosition {
  file: string;
  line: number;
  col: number;
}

export interface ConfigProblem extends SourcePosition {
  message: string;
  /** Dotted path of the offending key, e.g. `uplink[0].routingKey`. */
  path: string;
}

export function formatProblem(problem: ConfigProblem): string {
  return `${problem.file}:${problem.line}:${problem.col}: ${problem.message}`;
}

export class ConfigError extends BridgeError {
  readonly problems: readonly ConfigProblem[];

  constructor(code: 'BRIDGE_ERR_CONFIG_READ' | 'BRIDGE_ERR_CONFIG_INVALID', problems: readonly ConfigProblem[], options?: { cause?: unknown }) {
    super(code, problems.map(formatProblem).join('\n'), options);
    this.problems = problems;
  }
}

/** A rule's pattern or template is wrong; `path` is relative to the rule (e.g. `routingKey`). */
export class MappingError extends BridgeError {
  readonly field: string;

  constructor(code: 'BRIDGE_ERR_PATTERN_INVALID' | 'BRIDGE_ERR_TEMPLATE_INVALID', field: string, message: string) {
    super(code, message);
    this.field = field;
  }
}

export class RenderError extends BridgeError {
  constructor(message: string) {
    super('BRIDGE_ERR_RENDER', message);
  }
}

export class TopicError extends BridgeError {
  constructor(message: string) {
    super('BRIDGE_ERR_TOPIC_INVALID', message);
  }
}

export type PublishErrorCode =
  | 'BRIDGE_ERR_PUBLISH_NACKED'
  | 'BRIDGE_ERR_PUBLISH_TIMEOUT'
  | 'BRIDGE_ERR_PUBLISH_ABANDONED'
  | 'BRIDGE_ERR_PUBLISH_REJECTED'
  | 'BRIDGE_ERR_PUBLISH_RELEASED'
  | 'BRIDGE_ERR_PUBLISH_MODIFIED'
  | 'BRIDGE_ERR_ADDRESS_REFUSED'
  | 'BRIDGE_ERR_PUBLISH_TOO_LARGE'
  | 'BRIDGE_ERR_EXCHANGE_REFUSED'
  | 'BRIDGE_ERR_PUBLISHER_CLOSED';

export class PublishError extends BridgeError {
  constructor(code: PublishErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A retained publish refused by one of the `mqtt.maxRetained*` limits (named as `limits_refused_total` labels it). */
export class RetainedLimitError extends BridgeError {
  readonly limit: string;

  constructor(limit: string, topic: string) {
    super('BRIDGE_ERR_RETAINED_LIMIT', `retained message on "${topic}" refused: it would pass the ${limit} limit`);
    this.limit = limit;
  }
}

/** A CONNECT refused with `returnCode` (2 to 5); aedes sends that CONNACK and closes the connection. */
export class LoginRefusedError extends BridgeError {
  readonly returnCode: number;

  constructor(returnCode: number, message: string) {
    super('BRIDGE_ERR_LOGIN_REFUSED', message);
    this.returnCode = returnCode;
  }
}

/** A TLS listener's certificate, key or CA file that could not be read or used. */
export class TlsFileError extends BridgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BRIDGE_ERR_TLS_FILE', message, options);
  }
}

/** The HTTP endpoint (metrics and health) could not listen. */
export class HttpListenError extends BridgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BRIDGE_ERR_HTTP_LISTEN', message, options);
  }
}

export class ListenError extends BridgeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BRIDGE_ERR_LISTEN', message, options);
  }
}

export class UsageError extends BridgeError {
  constructor(message: string) {
    super('BRIDGE_ERR_USAGE', message);
  }
}
