import { z } from 'zod';
import { ACL_PLACEHOLDER } from '../auth/acl.js';
import { CLIENT_ID_PLACEHOLDER } from '../auth/client-ids.js';
import { isPasswordHash } from '../auth/passwords.js';
import { MQTT_MAX_FIXED_HEADER_BYTES, MQTT_MAX_REMAINING_LENGTH } from '../protocol/mqtt.js';

/**
 * The configuration schema: the one source of types, defaults and documentation.
 * docs/configuration.md is generated from it (`npm run docs`); a test fails when it is stale.
 * Every field carries `description` and, where useful, `examples` in its metadata.
 */

export const DEFAULT_MQTT_PORT = 1883;
export const DEFAULT_MQTT_WS_PORT = 8083;
export const DEFAULT_WS_PATH = '/mqtt';
export const DEFAULT_LISTEN_HOST = '0.0.0.0';
export const DEFAULT_MAX_CLIENT_ID_LENGTH = 128;
export const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
export const DEFAULT_CONNECTION_NAME = 'mqtt-amqp-bridge';
export const DEFAULT_HEARTBEAT_SECONDS = 30;
export const DEFAULT_MAX_UNCONFIRMED = 1024;
export const DEFAULT_PUBLISH_TIMEOUT_MS = 10_000;
export const DEFAULT_RECONNECT_INITIAL_DELAY_MS = 200;
/** An exchange or queue RabbitMQ refused is asked for again after two minutes (and on every reload and reconnect). */
export const DEFAULT_REFUSED_RETRY_MS = 120_000;
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 30_000;
export const DEFAULT_RECONNECT_FACTOR = 2;
export const DEFAULT_RECONNECT_JITTER = 0.2;
export const AMQP_PROTOCOLS = ['0-9-1', '1.0'] as const;
export type AmqpProtocol = (typeof AMQP_PROTOCOLS)[number];
export const DEFAULT_AMQP_PROTOCOL: AmqpProtocol = '0-9-1';
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 60;
export const DEFAULT_DOWNLINK_PREFETCH = 100;
export const DEFAULT_MAX_OFFLINE_MESSAGES = 1000;
export const DOWNLINK_QUEUE_PREFIX = 'bridge.downlink.';
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_PENDING_MESSAGES = 10_000;
export const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_INFLIGHT_PER_CLIENT = 100;
export const DEFAULT_REFUSE_CONNECTIONS_AFTER_MS = 30_000;
export const DEFAULT_MAX_PACKET_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS = 100_000;
export const DEFAULT_MAX_TOPIC_BYTES = 4_096;
export const DEFAULT_MAX_TOPIC_LEVELS = 32;
/** aedes' matcher cannot take more levels than this. */
export const AEDES_MAX_TOPIC_LEVELS = 100;
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT = 100;
export const DEFAULT_MAX_RETAINED_MESSAGES = 100_000;
export const DEFAULT_MAX_RETAINED_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_RETAINED_MESSAGES_PER_USER = 10_000;
export const DEFAULT_MAX_RETAINED_BYTES_PER_USER = 32 * 1024 * 1024;
export const DEFAULT_MAX_PENDING_QOS2_BYTES_PER_SESSION = 64 * 1024;
export const DEFAULT_DRAIN_TIMEOUT_MS = 60_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_CONNECT_BYTES = 64 * 1024;
export const DEFAULT_MAX_UNAUTHENTICATED_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_BUFFERED_BYTES_PER_ADDRESS = 64 * 1024 * 1024;
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 10_000;
export const DEFAULT_PACKET_TIMEOUT_MS = 60_000;
/**
 * What one QoS 2 PUBLISH awaiting its PUBREL counts against `mqtt.maxPendingQos2BytesPerSession`:
 * the bridge keeps only its packet id, a slot in a Set (measured at 20 to 40 bytes in V8 as the
 * table fills and doubles).
 */
export const PENDING_QOS2_ENTRY_BYTES = 32;
/** One source address may hold at most 1/this of `maxUnauthenticatedBytes`, so no single host fills it. */
export const UNAUTHENTICATED_SHARES_PER_ADDRESS = 4;
/**
 * A connection holding no more than this is never refused by a shared byte budget (only by its
 * own bounds): an ordinary small packet that straddles two reads, or a login, goes through even
 * while an attack has filled the budgets. What that lets through is bounded by the number of
 * connections, and is less than an idle connection costs anyway (about 10 KiB).
 */
export const SMALL_HOLD_BYTES = 4 * 1024;
export const DEFAULT_HTTP_PORT = 9102;
/** As RabbitMQ's MQTT plugin: an offline persistent session is kept for one day. */
export const DEFAULT_SESSION_EXPIRY_SECONDS = 86_400;
export const MAX_SESSION_EXPIRY_SECONDS = 10 * 365 * 86_400;
export const DEFAULT_MAX_SESSIONS_PER_USER = 10_000;
export const DEFAULT_LOG_LEVEL = 'info';

/** The queue a downlink rule consumes: the existing `queue` it names, or the one the bridge declares for it. */
export function downlinkQueueName(rule: { readonly name: string; readonly queue?: string | undefined; readonly queueName?: string | undefined }): string {
  return rule.queue ?? rule.queueName ?? `${DOWNLINK_QUEUE_PREFIX}${rule.name}`;
}

/** A number may also be written as a string of digits (as `${PORT}` substitutions give). */
function integer(min: number, max: number = Number.MAX_SAFE_INTEGER) {
  return z.preprocess(
    (value) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value),
    z.number().int().min(min).max(max),
  );
}

function decimal(min: number, max: number) {
  return z.preprocess(
    (value) => (typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value),
    z.number().min(min).max(max),
  );
}

function boolean() {
  return z.preprocess((value) => (value === 'true' ? true : value === 'false' ? false : value), z.boolean());
}

const RULE_NAME = /^[A-Za-z0-9_.-]+$/;
const ruleName = z
  .string()
  .regex(RULE_NAME, 'a rule name holds only letters, digits, "_", "." and "-"')
  .max(100)
  .meta({ description: 'Unique name of the rule; it appears in logs, metrics and `route` output.', examples: ['telemetry'] });

const port = (fallback: number) =>
  integer(0, 65_535)
    .default(fallback)
    .meta({ description: 'TCP port to listen on; 0 picks a free port.', examples: [fallback] });

const host = z
  .string()
  .min(1)
  .default(DEFAULT_LISTEN_HOST)
  .meta({ description: 'Address to listen on.', examples: ['0.0.0.0', '127.0.0.1', '::'] });

const tcpListener = z
  .strictObject({
    type: z.literal('tcp').meta({ description: 'MQTT over plain TCP.' }),
    host,
    port: port(DEFAULT_MQTT_PORT),
  })
  .meta({ title: 'tcp listener' });

const wsListener = z
  .strictObject({
    type: z.literal('ws').meta({ description: 'MQTT over WebSocket (subprotocol `mqtt`).' }),
    host,
    port: port(DEFAULT_MQTT_WS_PORT),
    path: z
      .string()
      .startsWith('/', 'a WebSocket path starts with "/"')
      .default(DEFAULT_WS_PATH)
      .meta({ description: 'HTTP path that accepts the WebSocket upgrade; other paths are refused.', examples: ['/mqtt'] }),
  })
  .meta({ title: 'ws listener' });

export const DEFAULT_MQTT_TLS_PORT = 8883;
export const DEFAULT_MQTT_WSS_PORT = 8084;

const tlsFields = {
  cert: z.string().min(1).meta({ description: 'PEM file with the server certificate (and its chain).', examples: ['certs/server.pem'] }),
  key: z.string().min(1).meta({ description: 'PEM file with the private key of the certificate.', examples: ['certs/server.key'] }),
  ca: z.string().min(1).optional().meta({ description: 'PEM file with the CAs that client certificates must chain to.', examples: ['certs/ca.pem'] }),
  clientCertificates: z
    .enum(['none', 'optional', 'required'])
    .default('none')
    .meta({
      description:
        'Whether clients present a certificate (verified against `ca`): `required` refuses the handshake without a valid one; `optional` accepts clients without one. A verified certificate can name the user (`auth.certificateUsername: cn`).',
    }),
};

const needsCa = (listener: { ca?: string | undefined; clientCertificates: string }) => listener.clientCertificates === 'none' || listener.ca !== undefined;
const needsCaMessage = { message: 'client certificates are checked against `ca`: give one', path: ['ca'] };

const tlsListener = z
  .strictObject({
    type: z.literal('tls').meta({ description: 'MQTT over TLS (1.2 or later).' }),
    host,
    port: port(DEFAULT_MQTT_TLS_PORT),
    ...tlsFields,
  })
  .refine(needsCa, needsCaMessage)
  .meta({ title: 'tls listener' });

const wssListener = z
  .strictObject({
    type: z.literal('wss').meta({ description: 'MQTT over WebSocket over TLS (1.2 or later).' }),
    host,
    port: port(DEFAULT_MQTT_WSS_PORT),
    path: z
      .string()
      .startsWith('/', 'a WebSocket path starts with "/"')
      .default(DEFAULT_WS_PATH)
      .meta({ description: 'HTTP path that accepts the WebSocket upgrade; other paths are refused.', examples: ['/mqtt'] }),
    ...tlsFields,
  })
  .refine(needsCa, needsCaMessage)
  .meta({ title: 'wss listener' });

export const listenerSchema = z.discriminatedUnion('type', [tcpListener, wsListener, tlsListener, wssListener]);

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0';
export const DEFAULT_REDIS_KEY_PREFIX = 'mqtt-amqp-bridge:';
/** How long after an instance's last heartbeat in Redis the other instances remove its routes and take over its sessions and wills. */
export const DEFAULT_INSTANCE_TIMEOUT_SECONDS = 15;

/** A Redis URL: redis:// or rediss:// (TLS), user and password optional, the path a database number. */
const redisUrl = z
  .string()
  .refine((url) => {
    if (!/^rediss?:\/\//.test(url)) return false;
    try {
      const { pathname, hostname } = new URL(url);
      return hostname.length > 0 && /^\/?(\d+)?$/.test(pathname);
    } catch {
      return false;
    }
  }, 'a Redis URL is redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS), DB a number');

const persistenceSchema = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('memory').meta({ description: 'Sessions, subscriptions, queues, retained messages, QoS 2 state and wills in this process (and `sessionFile`).' }) }),
    z.strictObject({
      type: z.literal('redis').meta({ description: 'All of that in Redis: it survives a crash of the bridge, and several bridges (or `run --workers N`) share it.' }),
      url: redisUrl
        .default(DEFAULT_REDIS_URL)
        .meta({
          description:
            'The Redis server: `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, `rediss://` for TLS; the database number selects the database. The password never appears in logs. With `sentinels`, HOST and PORT are not used.',
          examples: [DEFAULT_REDIS_URL, 'rediss://bridge:secret@redis.example:6380/2'],
        }),
      keyPrefix: z
        .string()
        .min(1)
        .max(200)
        .default(DEFAULT_REDIS_KEY_PREFIX)
        .meta({ description: 'Every key the bridge writes starts with this, so that several fleets (or tests) can share one Redis database.', examples: [DEFAULT_REDIS_KEY_PREFIX] }),
      tls: z
        .strictObject({
          ca: z.string().min(1).optional().meta({ description: "PEM file with the CA that signed Redis' certificate (default: the system's CAs)." }),
          cert: z.string().min(1).optional().meta({ description: 'PEM file with a client certificate.' }),
          key: z.string().min(1).optional().meta({ description: 'PEM file with the key of the client certificate.' }),
        })
        .refine((tls) => (tls.cert === undefined) === (tls.key === undefined), { message: 'a client certificate needs its key, and a key its certificate', path: ['key'] })
        .optional()
        .meta({ description: 'Files for a `rediss://` URL.' }),
      sentinels: z
        .array(z.strictObject({ host: z.string().min(1).meta({ description: 'A sentinel host.' }), port: integer(1, 65_535).default(26_379).meta({ description: 'Its port.' }) }))
        .min(1)
        .optional()
        .meta({ description: 'Redis Sentinel: the sentinels to ask for the current master of `sentinelName`; the bridge follows a failover.' }),
      sentinelName: z.string().min(1).optional().meta({ description: 'The master name the sentinels know (with `sentinels`).', examples: ['mymaster'] }),
      instanceTimeoutSeconds: integer(2, 3600)
        .default(DEFAULT_INSTANCE_TIMEOUT_SECONDS)
        .meta({
          description:
            "Each bridge on this Redis writes a heartbeat every third of this; when an instance's heartbeat is this old (it was killed, or lost Redis), the others remove its routes, so that nothing is sent to it any more, take over its persistent sessions (they go offline) and publish its clients' wills. Its devices reconnect elsewhere.",
        }),
    })
      .refine((redis) => (redis.sentinels === undefined) === (redis.sentinelName === undefined), {
        message: '`sentinels` and `sentinelName` go together',
        path: ['sentinelName'],
      })
      .refine((redis) => redis.tls === undefined || redis.url.startsWith('rediss://'), {
        message: '`tls` is for a rediss:// URL (TLS); this URL is redis:// (plain TCP)',
        path: ['tls'],
      }),
  ])
  .default({ type: 'memory' })
  .meta({
    description:
      'Where the MQTT state lives: `memory` (one process; `sessionFile` saves it on a graceful stop) or `redis` (durable, shared by several bridges and workers; Sentinel is supported, Redis Cluster is not). What each keeps through a crash, and the Redis settings that make it durable: docs/persistence.md.',
  });

const mqttSchema = z
  .strictObject({
    listeners: z
      .array(listenerSchema)
      .min(1, 'at least one listener is needed')
      .default([{ type: 'tcp', host: DEFAULT_LISTEN_HOST, port: DEFAULT_MQTT_PORT }])
      .meta({ description: 'Where devices connect. Every listener carries the same MQTT server.' }),
    maxOfflineMessages: integer(1)
      .default(DEFAULT_MAX_OFFLINE_MESSAGES)
      .meta({
        description:
          'QoS 1/2 messages kept for one offline persistent session (clean session = false); past this the oldest is dropped and counted.',
      }),
    persistence: persistenceSchema,
    sessionFile: z
      .string()
      .min(1)
      .optional()
      .meta({
        description:
          'File where persistent sessions (subscriptions and queued messages of clean-session=false clients) and retained messages are saved on shutdown and read back (once) on start; a relative path is from the configuration file\'s folder, and the folder must be writable (in the container image: /app/data). Without it they live in memory only and a restart forgets them. With `persistence.type: memory` only (Redis keeps them itself); a crash (SIGKILL, OOM) skips the save: see docs/persistence.md.',
        examples: ['data/sessions.json'],
      }),
    maxPacketBytes: integer(1_024, MQTT_MAX_REMAINING_LENGTH)
      .default(DEFAULT_MAX_PACKET_BYTES)
      .meta({
        description:
          'Largest MQTT packet accepted (its remaining length), on every listener. A bigger one is refused from its fixed header, before its payload is read: the connection is closed and the refusal counted.',
      }),
    maxConnections: integer(1)
      .default(DEFAULT_MAX_CONNECTIONS)
      .meta({ description: 'Most connections at once over all listeners; past this new ones are closed at once and counted.' }),
    maxTopicBytes: integer(1, 65_535)
      .default(DEFAULT_MAX_TOPIC_BYTES)
      .meta({ description: 'Longest topic (PUBLISH) or filter (SUBSCRIBE) accepted, in bytes of UTF-8.' }),
    maxTopicLevels: integer(1, AEDES_MAX_TOPIC_LEVELS)
      .default(DEFAULT_MAX_TOPIC_LEVELS)
      .meta({ description: 'Most levels in a topic or filter. A PUBLISH past either topic limit closes the connection, and so does a CONNECT whose will topic is past one; a SUBSCRIBE gets return code 0x80 for that filter.' }),
    maxSubscriptionsPerClient: integer(1)
      .default(DEFAULT_MAX_SUBSCRIPTIONS_PER_CLIENT)
      .meta({ description: 'Most subscriptions one client holds; past this a SUBSCRIBE gets return code 0x80 for the new filter.' }),
    maxRetainedMessages: integer(0)
      .default(DEFAULT_MAX_RETAINED_MESSAGES)
      .meta({
        description:
          'Most retained messages kept, over all users and the downlink. A retained publish that would add one past it is refused: a device\'s is not forwarded, stored or acknowledged, and its connection is closed (MQTT 3.1.1 cannot refuse one publish); a will is not published; a downlink one is dead-lettered. Clearing a retained message (empty payload) is always allowed. Counted in `limits_refused_total{limit="retained_messages"}`.',
      }),
    maxRetainedBytes: integer(0)
      .default(DEFAULT_MAX_RETAINED_BYTES)
      .meta({
        description:
          'Most bytes (topic and payload) of retained messages kept, over all users and the downlink; refused as for `maxRetainedMessages`. Replacing a retained message counts the difference.',
      }),
    maxRetainedMessagesPerUser: integer(0)
      .default(DEFAULT_MAX_RETAINED_MESSAGES_PER_USER)
      .meta({
        description:
          'Most retained messages published by one user (its username, or the certificate identity) kept; refused as for `maxRetainedMessages`. Clients without a username count as one user together. Downlink messages count in the totals only.',
      }),
    maxRetainedBytesPerUser: integer(0)
      .default(DEFAULT_MAX_RETAINED_BYTES_PER_USER)
      .meta({ description: 'Most bytes (topic and payload) of retained messages published by one user kept; refused as for `maxRetainedMessages`.' }),
    maxPendingQos2BytesPerSession: integer(PENDING_QOS2_ENTRY_BYTES)
      .default(DEFAULT_MAX_PENDING_QOS2_BYTES_PER_SESSION)
      .meta({
        description: `Bytes of QoS 2 state one session keeps for PUBLISHes awaiting PUBREL, also while its client is away (clean session = 0). The bridge keeps only the packet id of each, counted as ${PENDING_QOS2_ENTRY_BYTES} bytes (so the default is ${DEFAULT_MAX_PENDING_QOS2_BYTES_PER_SESSION / PENDING_QOS2_ENTRY_BYTES} messages); a QoS 2 PUBLISH past it is not forwarded or acknowledged and closes the connection, counted in \`limits_refused_total{limit="qos2_pending_bytes"}\`.`,
      }),
    connectTimeoutMs: integer(100)
      .default(DEFAULT_CONNECT_TIMEOUT_MS)
      .meta({ description: 'A connection that has not sent CONNECT this long after it opened is closed (against idle sockets holding connections).' }),
    drainTimeoutMs: integer(0)
      .default(DEFAULT_DRAIN_TIMEOUT_MS)
      .meta({
        description:
          'A subscriber whose socket stays full this long is disconnected, so a slow or stuck device cannot hold up delivery to the others; 0 waits forever.',
      }),
    sessionExpirySeconds: integer(1, MAX_SESSION_EXPIRY_SECONDS)
      .default(DEFAULT_SESSION_EXPIRY_SECONDS)
      .meta({
        description:
          'A persistent session (clean session = false) whose client stays away this long is removed with its subscriptions, queued messages and QoS 2 state, and the removal counted; the client then starts afresh (session present = 0). The default, one day, is that of RabbitMQ\'s MQTT plugin.',
        examples: [DEFAULT_SESSION_EXPIRY_SECONDS],
      }),
    maxSessionsPerUser: integer(1)
      .default(DEFAULT_MAX_SESSIONS_PER_USER)
      .meta({
        description:
          'Most persistent sessions (clean session = false, connected or not) one user may hold, so that one set of credentials cannot fill the bridge with sessions; a CONNECT that would create one more gets CONNACK return code 5 and is counted. Anonymous clients count as one user. Raise it where many devices share one username.',
      }),
    maxConnectBytes: integer(1_024, MQTT_MAX_REMAINING_LENGTH)
      .default(DEFAULT_MAX_CONNECT_BYTES)
      .meta({
        description:
          'Largest CONNECT accepted (its remaining length), refused from its fixed header like `maxPacketBytes`. It also bounds everything a connection may send before its CONNACK: the bridge holds those bytes while it checks the login, and MQTT clients wait for the CONNACK before sending more. A CONNECT carries a client id, a will, a username and a password; 64 KiB leaves room for a will payload of some 60 KiB.',
      }),
    maxUnauthenticatedBytes: integer(64 * 1024)
      .default(DEFAULT_MAX_UNAUTHENTICATED_BYTES)
      .meta({
        description:
          'Most bytes held, over all connections, for connections not yet logged in (their login not yet accepted): their CONNECTs, complete or not, and anything sent after them. One source address may hold a quarter of it, so one host cannot fill it. An ordinary CONNECT is a few hundred bytes, so 64 MiB holds some 200,000 logins in progress; a connection that would pass it is closed (one holding at most 4 KiB never is) and counted.',
      }),
    maxBufferedBytes: integer(1_024)
      .default(DEFAULT_MAX_BUFFERED_BYTES)
      .meta({
        description:
          'Most bytes held, over all connections, for packets (and WebSocket messages) whose header has arrived but not yet all of their body, and for connections not yet logged in. A packet that completes within one read costs nothing here; a big one sent slowly holds its announced size until it completes. A connection whose packet would pass it is closed (one holding at most 4 KiB never is) and counted. This bounds the memory slow or hostile senders can take, whatever their number of addresses.',
      }),
    maxBufferedBytesPerAddress: integer(0)
      .default(DEFAULT_MAX_BUFFERED_BYTES_PER_ADDRESS)
      .meta({
        description:
          'As `maxBufferedBytes`, for the connections of one source address (an IPv4 address, or the /64 prefix of an IPv6 one); 0: no limit. Devices behind one NAT or load balancer share an address, so this is several of the largest packets (or WebSocket messages, up to twice `maxPacketBytes`) at once; it must hold at least one packet of `maxPacketBytes`.',
      }),
    maxConnectionsPerAddress: integer(0)
      .default(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS)
      .meta({
        description:
          'Most connections open at once from one source address (an IPv4 address, or the /64 prefix of an IPv6 one), so one host cannot take every connection of `maxConnections`; past it new ones are closed at once and counted. 0: no limit. Devices behind a NAT share an address, hence the high default; behind a load balancer that hides client addresses (no client IP preservation) every connection shares a few addresses: raise it or set 0.',
      }),
    packetTimeoutMs: integer(100)
      .default(DEFAULT_PACKET_TIMEOUT_MS)
      .meta({
        description:
          'A packet (or WebSocket message) not complete this long after its first byte arrived closes the connection, whatever the keep-alive (a keep-alive of 0 would otherwise let a partial packet hold its memory for ever). Large payloads over slow links take time: in one minute 2 Mbit/s carries 15 MB, 100 kbit/s 750 KB; raise it for devices that send more than that over such links.',
      }),
    maxClientIdLength: integer(1, 65_535)
      .default(DEFAULT_MAX_CLIENT_ID_LENGTH)
      .meta({
        description:
          'Longest client identifier accepted; longer ones get CONNACK return code 2 (so does an empty one with clean session = 0 [MQTT-3.1.3-8]). MQTT 3.1.1 requires at least 23 [MQTT-3.1.3-5].',
      }),
  })
  .refine((mqtt) => mqtt.sessionFile === undefined || mqtt.persistence.type === 'memory', {
    message: 'sessionFile saves the memory state on a graceful stop; with `persistence.type: redis` the state is in Redis already: remove sessionFile',
    path: ['sessionFile'],
  })
  .refine((mqtt) => mqtt.maxBufferedBytesPerAddress === 0 || mqtt.maxBufferedBytesPerAddress >= mqtt.maxPacketBytes + MQTT_MAX_FIXED_HEADER_BYTES, {
    message: 'maxBufferedBytesPerAddress must hold a packet of maxPacketBytes (plus its 5-byte header), or be 0',
    path: ['maxBufferedBytesPerAddress'],
  })
  .refine((mqtt) => mqtt.maxBufferedBytes >= mqtt.maxPacketBytes + MQTT_MAX_FIXED_HEADER_BYTES, {
    message: 'maxBufferedBytes must hold a packet of maxPacketBytes (plus its 5-byte header)',
    path: ['maxBufferedBytes'],
  })
  .refine((mqtt) => mqtt.maxUnauthenticatedBytes >= UNAUTHENTICATED_SHARES_PER_ADDRESS * (mqtt.maxConnectBytes + MQTT_MAX_FIXED_HEADER_BYTES), {
    message: `maxUnauthenticatedBytes must be at least ${UNAUTHENTICATED_SHARES_PER_ADDRESS} times maxConnectBytes (plus 5): one address may hold a quarter of it, and that must fit a CONNECT of maxConnectBytes`,
    path: ['maxUnauthenticatedBytes'],
  })
  .meta({ description: 'The MQTT server the devices talk to.' });

const exchangeSchema = z.strictObject({
  name: z.string().min(1).max(255).meta({ description: 'Exchange name.', examples: ['telemetry'] }),
  type: z
    .enum(['topic', 'direct', 'fanout', 'headers'])
    .default('topic')
    .meta({ description: 'Exchange type.' }),
  durable: boolean().default(true).meta({ description: 'Survives a broker restart.' }),
  autoDelete: boolean().default(false).meta({ description: 'Deleted when its last binding goes.' }),
});

const reconnectSchema = z
  .strictObject({
    initialDelayMs: integer(0)
      .default(DEFAULT_RECONNECT_INITIAL_DELAY_MS)
      .meta({ description: 'Delay before the first reconnect attempt.' }),
    maxDelayMs: integer(0).default(DEFAULT_RECONNECT_MAX_DELAY_MS).meta({ description: 'Upper bound of the delay between attempts.' }),
    factor: decimal(1, 100).default(DEFAULT_RECONNECT_FACTOR).meta({ description: 'Each delay is the previous one times this.' }),
    jitter: decimal(0, 1)
      .default(DEFAULT_RECONNECT_JITTER)
      .meta({ description: 'Random spread of each delay, as a fraction of it, so instances do not reconnect in step.' }),
  })
  .prefault({})
  .meta({ description: 'Reconnection to RabbitMQ: exponential backoff with jitter, retried forever.' });

const amqpSchema = z
  .strictObject({
    protocol: z
      .enum(AMQP_PROTOCOLS)
      .default(DEFAULT_AMQP_PROTOCOL)
      .meta({
        description:
          'The protocol the broker side speaks: `0-9-1` (RabbitMQ: rules name an `exchange` and a `routingKey`) or `1.0` (the OASIS standard: Apache Qpid, ActiveMQ Artemis and Classic, Azure Service Bus, Solace, RabbitMQ 4 and RabbitMQ 3.x with its AMQP 1.0 plugin; rules name an `address` and a `subject`). See docs/amqp-1.0.md.',
      }),
    url: z
      .string()
      .regex(/^amqps?:\/\//, 'an AMQP URL starts with amqp:// or amqps://')
      // Checked here, and the URL never quoted: an unparsable URL, password and all, would otherwise
      // reach the error that the URL parser throws (as its `input`), and from there the output.
      .refine((url) => URL.canParse(url), 'is not a valid URL (is the port a number up to 65535? are `/`, `?` and `#` in the password percent-encoded?)')
      .default(DEFAULT_AMQP_URL)
      .meta({
        description:
          'The broker to connect to; the password never appears in logs. With `protocol: "1.0"` the user and password in the URL are sent with SASL PLAIN, no user means SASL ANONYMOUS, and a client certificate (`tls`) with no password means SASL EXTERNAL.',
        examples: [DEFAULT_AMQP_URL],
      }),
    connectionName: z
      .string()
      .min(1)
      .default(DEFAULT_CONNECTION_NAME)
      .meta({ description: 'Connection name shown by RabbitMQ (management UI, `rabbitmqctl list_connections`). AMQP 0-9-1 only; AMQP 1.0 has `containerId`.' }),
    containerId: z
      .string()
      .min(1)
      .optional()
      .meta({
        description:
          'AMQP 1.0 only: the container id the bridge opens its connection with (brokers show it, and some allow one connection per id). Default: `mqtt-amqp-bridge-<hostname>-<process id>`.',
        examples: ['bridge-eu-1'],
      }),
    idleTimeoutSeconds: integer(0, 3600)
      .default(DEFAULT_IDLE_TIMEOUT_SECONDS)
      .meta({
        description:
          'AMQP 1.0 only: the idle timeout the bridge announces; the broker sends something at least every half of it, and a connection silent for longer is taken as lost. 0 announces none. (AMQP 0-9-1 has `heartbeatSeconds`.)',
      }),
    heartbeatSeconds: integer(0, 3600)
      .default(DEFAULT_HEARTBEAT_SECONDS)
      .meta({ description: 'AMQP 0-9-1 heartbeat interval; 0 disables heartbeats. (AMQP 1.0 has `idleTimeoutSeconds`.)' }),
    exchanges: z
      .array(exchangeSchema)
      .default([])
      .meta({ description: 'AMQP 0-9-1 only: exchanges declared (asserted) on every (re)connect. Rules may also use existing exchanges such as amq.topic.' }),
    maxUnconfirmed: integer(1, 65_535)
      .default(DEFAULT_MAX_UNCONFIRMED)
      .meta({
        description:
          'Most publishes awaiting a RabbitMQ confirm (AMQP 1.0: unsettled transfers) at once; more wait in the bridge. (0-9-1: a full window takes more once a quarter of it is confirmed, together.)',
      }),
    publishTimeoutMs: integer(1)
      .default(DEFAULT_PUBLISH_TIMEOUT_MS)
      .meta({
        description:
          'A publish not confirmed this long after the device sent it fails: the device is not acknowledged and is disconnected, so it retransmits.',
      }),
    reconnect: reconnectSchema,
    refusedRetryMs: integer(1)
      .default(DEFAULT_REFUSED_RETRY_MS)
      .meta({
        description:
          'How long the bridge waits before asking RabbitMQ again for an exchange or queue it refused (declared with another type or other arguments, missing, access refused). Such a refusal is logged once, at error level; the rules that need it wait meanwhile and the others flow. A reload and a reconnect ask again at once.',
      }),
    tls: z
      .strictObject({
        ca: z.string().min(1).optional().meta({ description: "PEM file with the CA that signed RabbitMQ's certificate (default: the system's CAs).", examples: ['certs/ca.pem'] }),
        cert: z.string().min(1).optional().meta({ description: 'PEM file with the bridge’s client certificate.', examples: ['certs/client.pem'] }),
        key: z.string().min(1).optional().meta({ description: 'PEM file with the key of the client certificate.', examples: ['certs/client.key'] }),
        servername: z.string().min(1).optional().meta({ description: 'Name checked against RabbitMQ’s certificate, when it differs from the URL’s host.' }),
      })
      .refine((tls) => (tls.cert === undefined) === (tls.key === undefined), { message: 'a client certificate needs its key, and a key its certificate', path: ['key'] })
      .optional()
      .meta({
        description:
          'TLS for an `amqps://` URL. With a client certificate and no password in the URL, the bridge authenticates with the EXTERNAL mechanism (the certificate is the identity).',
      }),
  })
  .meta({ description: 'The broker side: RabbitMQ over AMQP 0-9-1, or any AMQP 1.0 broker.' });

const HEADER_NAME = /^[\x21-\x7e]{1,128}$/;

const uplinkPropertiesSchema = z
  .strictObject({
    contentType: z.string().optional().meta({ description: 'Template for the content-type property.', examples: ['application/json'] }),
    contentEncoding: z.string().optional().meta({ description: 'Template for the content-encoding property.' }),
    type: z.string().optional().meta({ description: 'Template for the type property.' }),
    appId: z.string().optional().meta({ description: 'Template for the app-id property.' }),
    correlationId: z.string().optional().meta({ description: 'Template for the correlation-id property.' }),
    replyTo: z.string().optional().meta({ description: 'Template for the reply-to property.' }),
    priority: integer(0, 255).optional().meta({ description: 'Message priority (for priority queues).' }),
    expirationMs: integer(0).optional().meta({ description: 'Per-message TTL in milliseconds (the expiration property).' }),
  })
  .meta({ description: 'AMQP properties of each message; string values are templates.' });

export const uplinkRuleSchema = z.strictObject({
  name: ruleName,
  topic: z
    .string()
    .min(1)
    .meta({
      description: 'MQTT topic filter: literal levels, `+`, `{name}` (one level, captured) or a final `#` (captured as `{#}`).',
      examples: ['devices/{deviceId}/telemetry/#'],
    }),
  exchange: z
    .string()
    .max(255)
    .optional()
    .meta({ description: 'AMQP 0-9-1: template for the exchange to publish to (must exist or be declared under amqp.exchanges). Required in 0-9-1 mode.', examples: ['telemetry'] }),
  routingKey: z
    .string()
    .optional()
    .meta({
      description:
        'AMQP 0-9-1: template for the routing key; default `{topic}`. Values from the topic are encoded by swapping `.` and `/`. The default gives the routing keys of RabbitMQ\'s MQTT plugin.',
      examples: ['{deviceId}.{#}'],
    }),
  address: z
    .string()
    .min(1)
    .optional()
    .meta({ description: 'AMQP 1.0: template for the address (target node) to send to. Required in 1.0 mode.', examples: ['/exchange/telemetry', 'telemetry', 'topic://telemetry'] }),
  subject: z
    .string()
    .optional()
    .meta({
      description:
        'AMQP 1.0: template for the subject of each message (none when absent). Values from the topic are encoded as for a routing key (`.` and `/` swapped); RabbitMQ takes the subject as the routing key of an `/exchange/X` address.',
      examples: ['{deviceId}.{#}'],
    }),
  headers: z
    .record(z.string().regex(HEADER_NAME, 'a header name is 1 to 128 printable ASCII characters'), z.string())
    .optional()
    .meta({ description: 'Extra AMQP headers (AMQP 1.0: application-properties); each value is a template.', examples: [{ 'x-device-id': '{deviceId}' }] }),
  properties: uplinkPropertiesSchema.optional(),
});

export const downlinkRuleSchema = z
  .strictObject({
    name: ruleName,
    exchange: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .meta({ description: 'Exchange the bridge binds its own queue to (with `routingKey`).', examples: ['commands'] }),
    routingKey: z
      .string()
      .optional()
      .meta({
        description:
          'AMQP topic pattern: literal words, `*`, `{name}` (one word, captured) or a final `#` (captured as `{#}`). The queue is bound with `{name}` turned into `*`.',
        examples: ['{deviceId}.#'],
      }),
    queue: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .meta({ description: 'An existing queue to consume instead of `exchange` + `routingKey`; the bridge does not declare it.' }),
    queueName: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .meta({ description: 'Name of the queue the bridge declares for an `exchange` rule; default `bridge.downlink.<name>`.' }),
    address: z
      .string()
      .min(1)
      .optional()
      .meta({
        description: 'AMQP 1.0: the address (source node) the bridge receives from, one receiver link per rule. Required in 1.0 mode.',
        examples: ['/amq/queue/commands', 'commands', 'queue://commands'],
      }),
    subject: z
      .string()
      .optional()
      .meta({
        description:
          'AMQP 1.0: pattern for the subject of each message, as `routingKey` is for a routing key (literal words, `*`, `{name}`, a final `#`), whose captures feed `topic`. A message without a subject matches only a rule without `subject`; a message that does not match is rejected.',
        examples: ['{deviceId}.#'],
      }),
    topic: z
      .string()
      .min(1)
      .meta({
        description: 'Template for the MQTT topic: captures, `{#}`, `{routingKey}`, `{exchange}` (AMQP 1.0: `{subject}`, `{address}`), `{headers.NAME}` (AMQP 1.0: application-properties).',
        examples: ['devices/{deviceId}/commands/{#}'],
      }),
    qos: integer(0, 2)
      .transform((qos) => qos as 0 | 1 | 2) // the type the mapping code takes; checked just above
      .default(1)
      .meta({ description: 'Highest QoS the message is delivered with; a subscription with a lower QoS gets that lower QoS.' }),
    retain: boolean().default(false).meta({ description: 'Publish as retained (a message header `x-mqtt-retain: true` also does).' }),
    prefetch: integer(1, 65_535).default(DEFAULT_DOWNLINK_PREFETCH).meta({ description: 'Unacknowledged deliveries in flight for this rule.' }),
    deadLetterExchange: z
      .string()
      .max(255)
      .optional()
      .meta({
        description:
          'Dead-letter exchange of the queue the bridge declares (`x-dead-letter-exchange`): deliveries that cannot become an MQTT publish go there. A RabbitMQ policy does the same without this key.',
        examples: ['commands.dead'],
      }),
  })
  .superRefine((rule, context) => {
    if (rule.address !== undefined || rule.subject !== undefined) return; // an AMQP 1.0 rule: checked with the protocol (configSchema)
    const bound = rule.exchange !== undefined;
    if (bound === (rule.queue !== undefined)) {
      context.addIssue({ code: 'custom', message: 'a downlink rule names either `exchange` (with `routingKey`) or `queue`, not both and not neither', path: [] });
    }
    if (bound && rule.routingKey === undefined) {
      context.addIssue({ code: 'custom', message: 'a downlink rule with `exchange` needs a `routingKey` pattern', path: ['routingKey'] });
    }
    if (rule.queue !== undefined && rule.queueName !== undefined) {
      context.addIssue({ code: 'custom', message: '`queueName` names the queue the bridge declares; a `queue` rule declares none', path: ['queueName'] });
    }
    if (rule.queue !== undefined && rule.deadLetterExchange !== undefined) {
      context.addIssue({
        code: 'custom',
        message: '`deadLetterExchange` is set on the queue the bridge declares; give an existing `queue` its dead-letter exchange with a policy',
        path: ['deadLetterExchange'],
      });
    }
  });

const flowSchema = z
  .strictObject({
    maxPendingMessages: integer(1)
      .default(DEFAULT_MAX_PENDING_MESSAGES)
      .meta({ description: 'Most device publishes handed to AMQP and not yet confirmed, over all clients. When full, the flow state is `throttled`.' }),
    maxPendingBytes: integer(1_024)
      .default(DEFAULT_MAX_PENDING_BYTES)
      .meta({ description: 'Most payload bytes handed to AMQP and not yet confirmed, over all clients (default 64 MiB).' }),
    maxInflightPerClient: integer(1)
      .default(DEFAULT_MAX_INFLIGHT_PER_CLIENT)
      .meta({
        description:
          "Most of one client's publishes handed to AMQP at once, so one busy device cannot take the whole budget. A client at this limit goes on once a quarter of it is settled, its waiting publishes together.",
      }),
    qos0Overflow: z
      .enum(['drop', 'block'])
      .default('drop')
      .meta({
        description:
          'What happens to a QoS 0 publish while the flow is not `open`: `drop` it (counted), or `block` it like QoS 1/2 (its sender is no longer read until it goes through).',
      }),
    refuseConnectionsAfterMs: integer(0)
      .default(DEFAULT_REFUSE_CONNECTIONS_AFTER_MS)
      .meta({ description: 'While RabbitMQ has been unreachable this long, new connections get CONNACK return code 3 (server unavailable).' }),
  })
  .prefault({})
  .meta({ description: 'Flow control between devices and RabbitMQ: see docs/flow-control.md.' });

const userSchema = z.strictObject({
  username: z.string().min(1).max(65_535).meta({ description: 'The MQTT username.', examples: ['sensor-1'] }),
  password: z
    .string()
    .refine(isPasswordHash, 'passwords are stored as scrypt hashes, never in clear: make one with `mqtt-amqp-bridge passwd`')
    .meta({ description: 'Hash of the password, as `mqtt-amqp-bridge passwd` prints it (`scrypt$N$r$p$salt$hash`).' }),
});

/** What `auth.usersFile` holds. */
export const usersFileSchema = z.strictObject({
  users: z.array(userSchema).default([]).meta({ description: 'Users, as under `auth.users`.' }),
});

const clientIdPattern = z
  .string()
  .min(1)
  .max(65_535)
  .refine((pattern) => pattern.split(CLIENT_ID_PLACEHOLDER).join('').search(/[{}]/) === -1, 'a client id pattern may only use the placeholder {username} (and * for any characters)')
  .meta({ description: 'A client id pattern: `{username}` is the user\'s own name, `*` any run of characters.', examples: ['{username}-*'] });

const authSchema = z
  .strictObject({
    anonymous: boolean()
      .default(false)
      .meta({ description: 'Whether clients without a username may connect (they get CONNACK return code 5 otherwise).' }),
    users: z.array(userSchema).default([]).meta({ description: 'Users with their password hashes.' }),
    usersFile: z
      .string()
      .min(1)
      .optional()
      .meta({
        description:
          'A YAML file with a `users:` list, read with the configuration (relative paths are from the configuration file\'s folder); its users join `auth.users`, and a reload reads it again.',
        examples: ['users.yaml'],
      }),
    clientIds: z
      .array(
        z.union([
          clientIdPattern,
          z.strictObject({
            pattern: clientIdPattern,
            users: z.array(z.string().min(1)).min(1).optional().meta({ description: 'Only for these usernames.' }),
          }),
        ]),
      )
      .min(1, 'list at least one client id pattern, or leave clientIds out to allow any')
      .optional()
      .meta({
        description:
          'Which client ids a user may connect with: patterns where `{username}` is the user\'s own name and `*` any run of characters, e.g. `{username}` or `{username}-*`; an entry may be limited to some `users`. A CONNECT with another client id gets CONNACK return code 2 (identifier rejected). Without this key any client id is allowed; an ACL that uses `{clientId}` then trusts what the client claims, and `validate` warns.',
        examples: [['{username}', '{username}-*', { pattern: '*', users: ['admin'] }]],
      }),
    certificateUsername: z
      .enum(['none', 'cn'])
      .default('none')
      .meta({ description: "`cn`: on `tls`/`wss` listeners, a verified client certificate's common name is the username, no password needed." }),
  })
  .meta({
    description:
      'Authentication. Without this section every client may connect (the bridge warns at start); with it, anonymous clients are refused unless `anonymous: true`.',
  });


const aclAction = z.enum(['publish', 'subscribe']);
const aclActions = z.union([aclAction, z.array(aclAction).min(1)]);

const aclEntrySchema = z
  .strictObject({
    allow: aclActions.optional().meta({
      description:
        'What the entry allows: `publish`, `subscribe` or both. Entries are tried in order; the first that applies decides. An entry applies when its topic covers the whole request: the topic of a PUBLISH or will, the topic of a message delivered to the client, or every topic a SUBSCRIBE filter matches (`devices/+/commands/#` is not covered by `devices/{username}/commands/#`).',
    }),
    deny: aclActions.optional().meta({
      description:
        'What the entry denies (instead of `allow`); it applies as an allow does, when its topic covers the whole request. A SUBSCRIBE filter wholly inside it gets 0x80 (`devices/d1/secrets/#` under a deny of `devices/+/secrets/#`); a broader filter that only overlaps it (`devices/#`) is not decided by it, a later entry may grant it, and each message on a topic it denies is then not delivered to that client.',
    }),
    topic: z
      .string()
      .min(1)
      .refine((topic) => topic.replace(ACL_PLACEHOLDER, '').search(/[{}]/) === -1, 'an ACL topic may only use the placeholders {username} and {clientId}')
      .meta({ description: 'Topic filter (`+`, `#`); `{username}` and `{clientId}` are the client\'s own.', examples: ['devices/{username}/#'] }),
    users: z.array(z.string().min(1)).optional().meta({ description: 'Only for these usernames.' }),
  })
  .refine((entry) => (entry.allow === undefined) !== (entry.deny === undefined), 'an ACL entry has either `allow` or `deny`');

const aclRulesSchema = z.array(aclEntrySchema);

const aclSchema = z
  .union([
    aclRulesSchema,
    z.strictObject({
      rules: aclRulesSchema.meta({ description: 'The entries, tried in order: the first whose topic covers the request decides.' }),
      onDeniedPublish: z
        .enum(['disconnect', 'drop'])
        .default('disconnect')
        .meta({ description: 'A denied PUBLISH closes the connection (`disconnect`) or is acknowledged and delivered nowhere (`drop`); either way it is counted.' }),
    }),
  ])
  .transform((acl) => (Array.isArray(acl) ? { rules: acl, onDeniedPublish: 'disconnect' as const } : acl))
  .meta({
    description:
      'Per-client topic access: a list of entries (the first that covers the request decides; with an ACL, the rest is denied), or `{ rules: [...], onDeniedPublish: disconnect | drop }`. See docs/security.md.',
  });

const limitsSchema = z
  .strictObject({
    publishesPerSecond: integer(0)
      .default(0)
      .meta({
        description:
          'Publishes a second one client may make, on average (a token bucket); 0 for no limit. Past it, QoS 0 is dropped and QoS 1/2 delayed (the client is not read meanwhile); both are counted.',
      }),
    publishBurst: integer(1)
      .optional()
      .meta({ description: 'How many publishes a client may make at once before the rate applies; default `publishesPerSecond`.' }),
  })
  .prefault({})
  .meta({ description: 'Per-client limits on what devices may do.' });

const httpSchema = z
  .strictObject({
    enabled: boolean().default(true).meta({ description: 'Serve `/metrics`, `/healthz` and `/readyz`.' }),
    host: z.string().min(1).default(DEFAULT_LISTEN_HOST).meta({ description: 'Address to listen on.' }),
    port: integer(0, 65_535).default(DEFAULT_HTTP_PORT).meta({ description: 'Port; 0 picks a free one.', examples: [DEFAULT_HTTP_PORT] }),
  })
  .prefault({})
  .meta({ description: 'The HTTP endpoint for Prometheus and health checks: see docs/operations.md.' });

const logSchema = z
  .strictObject({
    level: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default(DEFAULT_LOG_LEVEL)
      .meta({ description: 'Lowest level written. Logs are JSON lines on stdout (readable with `--pretty`).' }),
  })
  .prefault({})
  .meta({ description: 'Logging.' });

function uniqueNames(rules: ReadonlyArray<{ name: string }>, context: z.RefinementCtx): void {
  const seen = new Set<string>();
  rules.forEach((rule, index) => {
    if (seen.has(rule.name)) context.addIssue({ code: 'custom', message: `rule name "${rule.name}" is used twice`, path: [index, 'name'] });
    seen.add(rule.name);
  });
}

/** Uplink properties AMQP 1.0 has no field for [AMQP 1.0, 3.2.4]. */
const AMQP091_ONLY_PROPERTIES = ['type', 'appId'] as const;

/** The keys of a rule that belong to one protocol only. */
const PROTOCOL_KEYS = {
  uplink: { '0-9-1': ['exchange', 'routingKey'], '1.0': ['address', 'subject'] },
  downlink: { '0-9-1': ['exchange', 'routingKey', 'queue', 'queueName', 'deadLetterExchange'], '1.0': ['address', 'subject'] },
} as const;

/** Each rule names its destination the way `amqp.protocol` says: `exchange` (0-9-1) or `address` (1.0), never the other's keys. */
function rulesFitTheProtocol(
  config: { amqp: { protocol: AmqpProtocol; exchanges: readonly unknown[] }; uplink: ReadonlyArray<Record<string, unknown>>; downlink: ReadonlyArray<Record<string, unknown>> },
  context: z.core.$RefinementCtx,
): void {
  const { protocol } = config.amqp;
  const other: AmqpProtocol = protocol === '1.0' ? '0-9-1' : '1.0';
  const mode = `amqp.protocol is "${protocol}"`;
  for (const direction of ['uplink', 'downlink'] as const) {
    config[direction].forEach((rule, index) => {
      for (const key of PROTOCOL_KEYS[direction][other]) {
        if (rule[key] === undefined) continue;
        const instead = protocol === '1.0' ? '`address` (and `subject`)' : direction === 'uplink' ? '`exchange` and `routingKey`' : '`exchange` and `routingKey`, or `queue`';
        context.addIssue({ code: 'custom', message: `\`${key}\` is an AMQP ${other} key but ${mode}: ${direction === 'uplink' ? 'an' : 'a'} ${direction} rule names ${instead}`, path: [direction, index, key] });
      }
      const properties = rule.properties as Record<string, unknown> | undefined;
      for (const key of AMQP091_ONLY_PROPERTIES) {
        if (protocol === '1.0' && properties?.[key] !== undefined) {
          context.addIssue({ code: 'custom', message: `AMQP 1.0 messages have no \`${key}\` property (${mode}); send it as a header instead`, path: [direction, index, 'properties', key] });
        }
      }
      if (protocol === '1.0' && rule.address === undefined) {
        context.addIssue({ code: 'custom', message: `is required (${mode})`, path: [direction, index, 'address'] });
      }
      if (protocol === '0-9-1' && direction === 'uplink' && rule.exchange === undefined && rule.address === undefined) {
        context.addIssue({ code: 'custom', message: 'is required', path: [direction, index, 'exchange'] });
      }
    });
  }
  if (protocol === '1.0' && config.amqp.exchanges.length > 0) {
    context.addIssue({ code: 'custom', message: `AMQP 1.0 declares nothing: \`amqp.exchanges\` is for amqp.protocol "0-9-1"`, path: ['amqp', 'exchanges'] });
  }
}

export const configSchema = z.strictObject({
  mqtt: mqttSchema.prefault({}),
  amqp: amqpSchema.prefault({}),
  uplink: z
    .array(uplinkRuleSchema)
    .default([])
    .superRefine(uniqueNames)
    .meta({ description: 'MQTT -> AMQP rules. The first rule whose topic matches a publish takes it; a publish no rule matches is counted and not forwarded.' }),
  downlink: z
    .array(downlinkRuleSchema)
    .default([])
    .superRefine(uniqueNames)
    .meta({ description: 'AMQP -> MQTT rules.' }),
  auth: authSchema.optional(),
  acl: aclSchema.optional(),
  flow: flowSchema,
  limits: limitsSchema,
  http: httpSchema,
  log: logSchema,
  shutdownTimeoutMs: integer(0)
    .default(DEFAULT_SHUTDOWN_TIMEOUT_MS)
    .meta({ description: 'On SIGTERM/SIGINT, how long to wait for unconfirmed publishes before closing.' }),
}).superRefine(rulesFitTheProtocol);

export type BridgeConfigInput = z.input<typeof configSchema>;
type DeepReadonly<T> = T extends (infer E)[] ? ReadonlyArray<DeepReadonly<E>> : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;
export type BridgeConfig = DeepReadonly<z.output<typeof configSchema>>;
export type ListenerConfig = BridgeConfig['mqtt']['listeners'][number];
export type PersistenceConfig = BridgeConfig['mqtt']['persistence'];
export type RedisPersistenceConfig = Extract<PersistenceConfig, { type: 'redis' }>;
export type DownlinkRuleSettings = BridgeConfig['downlink'][number];
export type UserSettings = z.output<typeof userSchema>;
