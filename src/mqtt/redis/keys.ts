/**
 * The names of the MQTT state's keys in Redis, below the connection's key prefix
 * (`mqtt.persistence.keyPrefix`). A client id is URI-encoded in a key name, so that no client id
 * can make a name that another key's has. aedes-persistence-redis keeps each client's
 * subscriptions under `client:ID` and the set `clients` (its own names).
 */

export const encodeId = (clientId: string): string => encodeURIComponent(clientId);
export const decodeId = (encoded: string): string => decodeURIComponent(encoded);

export const stateKeys = {
  /** LIST: the ids (`brokerId:brokerCounter`) of a session's queued messages, oldest first. */
  queue: (clientId: string) => `queue:${encodeId(clientId)}`,
  /** HASH: queued message id -> the packet (a PUBLISH, or the PUBREL that replaced it). */
  queuePackets: (clientId: string) => `queue-packets:${encodeId(clientId)}`,
  /** HASH: `i:ID` -> the packet id it was sent with, `m:PACKETID` -> ID, `n:ID` -> how many subscriptions queued it (when more than one). */
  queueState: (clientId: string) => `queue-state:${encodeId(clientId)}`,
  /** SET: the packet ids of a session's QoS 2 PUBLISHes awaiting PUBREL. */
  qos2: (clientId: string) => `qos2:${encodeId(clientId)}`,
  /** HASH: who owns a client id (`o`), whether its session is persistent (`p`), which connection holds it (`c`: INSTANCE/CLAIM, empty while offline), offline since (`t`, ms). */
  session: (clientId: string) => `session:${encodeId(clientId)}`,
  /** ZSET: the offline persistent sessions (encoded client ids) by when they went offline. */
  sessionsOffline: 'sessions-offline',
  /** HASH: owner -> how many persistent sessions it holds. */
  sessionsPerOwner: 'sessions-per-owner',
  /** ZSET: the bridge instances (aedes broker ids) by when they last said they are alive (ms). */
  instances: 'instances',
  /** HASH: instance -> since when it is silent, for an instance condemned (score 0 in `instances`) while its sessions are put offline. */
  instanceSilentSince: 'instance-silent-since',
  /** SET: the (encoded) client ids an instance's connections hold. */
  instanceSessions: (instanceId: string) => `instance-sessions:${instanceId}`,
  /** HASH: the wills an instance is responsible for, `BROKERID/CLIENTID` -> the will. */
  wills: (instanceId: string) => `wills:${instanceId}`,
  /** SET: the instances that may hold wills. */
  willHolders: 'will-holders',
  /** HASH: topic -> the retained message. */
  retainedMessages: 'retained-messages',
  /** HASH: topic -> `BYTES|OWNER` of the retained message, as the limits count it. */
  retainedEntries: 'retained-entries',
  /** HASH: `m`, `b`: retained messages and bytes stored; `m:OWNER`, `b:OWNER`: per user. */
  retainedUsage: 'retained-usage',
  /** HASH: the same counts for the room reserved by publishes not stored yet. */
  retainedReserved: 'retained-reserved',
  /** HASH: reservation id -> what it holds (`TOTALMESSAGES|TOTALBYTES|USERMESSAGES|USERBYTES|OWNER`). */
  retainedReservations: 'retained-reservations',
  /** ZSET: reservation id -> when it lapses (ms). */
  retainedReservationExpiry: 'retained-reservation-expiry',
} as const;
