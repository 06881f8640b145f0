import { Readable } from 'node:stream';
import Packet from 'aedes-packet';
import AsyncMemoryPersistence from 'aedes-persistence/asyncPersistence.js';
import { BridgeError, packetNotFound } from '../errors.js';
import { MemorySessionRegistry, type SessionRegistry } from './session-registry.js';
import { PendingQos2 } from './pending-qos2.js';
import type { RetainedOwner } from './retained-ledger.js';
import type { RetainedAccounting } from './retained-quota.js';
import type { QueueCheck } from './hooks/authorize-forward.js';

/** What aedes passes to identify a client or a subscription in the outgoing-queue calls. */
interface ClientRef {
  id?: string;
  clientId?: string;
  /** The subscription's filter, when aedes passes a subscription. */
  topic?: string;
}

export interface SessionStoreOptions {
  /** QoS 1/2 messages kept per client; past this the oldest not yet sent is dropped. */
  maxOfflineMessages: number;
  /** Called for each message dropped that way. */
  onDropped: (clientId: string) => void;
  /** Bytes of QoS 2 receive state (PUBLISHes awaiting PUBREL) kept per session; unbounded when absent. */
  maxPendingQos2BytesPerSession?: number;
  /** Called when a QoS 2 PUBLISH is refused because its session holds that much already. */
  onQos2Refused?: (clientId: string, heldBytes: number) => void;
  /** Told of every retained message stored; none when absent. */
  retained?: RetainedAccounting;
  /**
   * Whether a message on this topic may be queued for this client's session (its ACL), asked
   * with who holds the session. One it may not is left out: it would never be sent, and it would
   * take the place of one that would in the bounded queue. Not asked again for a client and
   * message it refused (a client whose several filters match is refused, and reports it, once).
   * Everything is queued when absent.
   */
  mayQueue?: QueueCheck;
}

/** What the memory store also needs: who published each retained message (for the session file). */
export interface MemorySessionStoreOptions extends SessionStoreOptions {
  retainedOwnerOf?: (topic: string) => RetainedOwner | undefined;
}

/**
 * Per-client queues of QoS 1/2 messages for persistent sessions (sent, awaiting the
 * acknowledgement, or waiting for the client to come back), with the semantics of aedes'
 * in-memory persistence and one difference: a queue is bounded, and an empty one is freed.
 */
export class OfflineQueues {
  private readonly queues = new Map<string, Packet[]>();

  constructor(private readonly options: Pick<SessionStoreOptions, 'maxOfflineMessages' | 'onDropped'>) {}

  enqueue(clientId: string, packet: Packet): void {
    let queue = this.queues.get(clientId);
    if (!queue) {
      queue = [];
      this.queues.set(clientId, queue);
    }
    queue.push(new Packet(packet));
    if (queue.length > this.options.maxOfflineMessages) {
      // Drop the oldest message not yet sent; one in flight keeps its place until acknowledged.
      const oldest = queue.findIndex((queued) => queued.messageId === undefined);
      queue.splice(oldest === -1 ? 0 : oldest, 1);
      this.options.onDropped(clientId);
    }
  }

  /** Records the packet id a queued message was sent with, or replaces a PUBLISH by its PUBREL. */
  update(clientId: string, packet: Packet): void {
    const queue = this.queues.get(clientId) ?? [];
    for (let i = 0; i < queue.length; i++) {
      const queued = queue[i]!;
      if (queued.brokerId === packet.brokerId) {
        if (queued.brokerCounter === packet.brokerCounter) {
          queued.messageId = packet.messageId;
          return;
        }
      } else if (queued.messageId === packet.messageId) {
        queue[i] = packet;
        return;
      }
    }
    throw packetNotFound();
  }

  /**
   * Removes a message: one sent is named by its packet id; one not sent yet has none, and is
   * named by the broker's id for it (aedes clears a message this way when authorizeForward
   * refuses it: matching on the absent packet id would remove whichever unsent message came first).
   */
  clear(clientId: string, packet: { messageId?: number | undefined; brokerId?: string; brokerCounter?: number }): Packet | undefined {
    const queue = this.queues.get(clientId);
    if (!queue) return undefined;
    const index =
      packet.messageId === undefined
        ? queue.findIndex((queued) => queued.messageId === undefined && queued.brokerId === packet.brokerId && queued.brokerCounter === packet.brokerCounter)
        : queue.findIndex((queued) => queued.messageId === packet.messageId);
    if (index === -1) return undefined;
    const [removed] = queue.splice(index, 1);
    if (queue.length === 0) this.queues.delete(clientId);
    return removed;
  }

  /** Forgets everything queued for a client (its session ended). */
  drop(clientId: string): void {
    this.queues.delete(clientId);
  }

  snapshot(clientId: string): Packet[] {
    return [...(this.queues.get(clientId) ?? [])];
  }

  clientIds(): string[] {
    return [...this.queues.keys()];
  }
}

/**
 * The MQTT state behind aedes: its persistence (subscriptions, offline queues, retained
 * messages, QoS 2 receive state, wills) and the registry of who owns which client id. Two
 * implementations: `createSessionStore` (memory, this file) and `createRedisSessionStore`
 * (src/mqtt/redis/session-store.ts); `createMqttState` (src/mqtt/state.ts) picks one.
 */
export interface SessionStore {
  /** What aedes is given as its persistence. */
  readonly persistence: SessionPersistence;
  readonly registry: SessionRegistry;
  /** Removes a session's subscriptions, queued messages and QoS 2 receive state. */
  removeSession(clientId: string): Promise<void>;
}

/**
 * The state of one bridge process: aedes' in-memory persistence (subscriptions, retained
 * messages, wills) with the outgoing queues replaced by bounded OfflineQueues, the QoS 2 receive
 * state by bounded PendingQos2, every retained message stored told to the retained-message
 * accounting, and the registry of who owns which client id. What the session file saves and
 * restores is reached through the extra members.
 */
export interface MemorySessionStore extends SessionStore {
  readonly registry: MemorySessionRegistry;
  readonly queues: OfflineQueues;
  readonly pendingQos2: PendingQos2;
  /** Ids of clients that hold (or held) subscriptions of a persistent session. */
  persistentClientIds(): string[];
  /** Who published the message retained on a topic (for snapshots). */
  retainedOwner(topic: string): RetainedOwner | undefined;
  /** Stores a retained message read from a snapshot, counted against its owner. */
  restoreRetained(packet: Packet, owner: RetainedOwner): Promise<void>;
}

/** The calls of aedes' persistence the bridge itself makes (snapshots, session expiry, shutdown). */
export interface SessionPersistence {
  subscriptionsByClient(client: { id: string }): Promise<Array<{ topic: string; qos: number }>>;
  addSubscriptions(client: { id: string }, subscriptions: Array<{ topic: string; qos: number }>): Promise<void>;
  createRetainedStream(pattern: string): AsyncIterable<Packet>;
  storeRetained(packet: Packet): Promise<void>;
  /** Forgets a session's QoS 2 receive state (what aedes calls for a clean session). */
  cleanIncoming(client: { id: string }): Promise<void>;
  /** Forgets the will this broker keeps for a client (a graceful shutdown publishes none). */
  delWill(client: { id: string; brokerId: string }): Promise<unknown>;
}

export function createSessionStore(options: MemorySessionStoreOptions, registry: MemorySessionRegistry = new MemorySessionRegistry()): MemorySessionStore {
  const pendingQos2 = new PendingQos2({ maxBytesPerSession: options.maxPendingQos2BytesPerSession ?? Number.POSITIVE_INFINITY });
  const check = options.mayQueue;
  const mayQueue = check && ((clientId: string, topic: string) => !check.enforced || check.mayQueue(clientId, topic, registry.holder(clientId)));
  const persistence = new BridgePersistence(new OfflineQueues(options), pendingQos2, { ...options, mayQueue });
  return {
    persistence,
    queues: persistence.queues,
    pendingQos2,
    registry,
    persistentClientIds: () => [...persistence.persistentClients],
    async removeSession(clientId) {
      const client = { id: clientId, clientId };
      persistence.queues.drop(clientId);
      await persistence.cleanSubscriptions(client);
      await persistence.cleanIncoming(client);
    },
    retainedOwner: (topic) => options.retainedOwnerOf?.(topic),
    restoreRetained: (packet, owner) => persistence.storeRetainedOf(packet, owner),
  };
}

/** The methods of aedes' in-memory persistence that BridgePersistence calls or overrides. */
interface MemoryPersistence extends SessionPersistence {
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>>;
  cleanSubscriptions(client: ClientRef): Promise<void>;
  cleanIncoming(client: { id: string }): Promise<void>;
}

const MemoryPersistence = AsyncMemoryPersistence as unknown as new () => MemoryPersistence;

/**
 * A subclass rather than a wrapper: aedes calls it for every QoS 1/2 publish, and the base
 * class keeps its state in private fields, which only work with the instance itself as `this`.
 */
class BridgePersistence extends MemoryPersistence {
  readonly persistentClients = new Set<string>();

  constructor(
    readonly queues: OfflineQueues,
    private readonly pendingQos2: PendingQos2,
    private readonly options: Omit<SessionStoreOptions, 'mayQueue'> & { mayQueue?: ((clientId: string, topic: string) => boolean) | undefined },
  ) {
    super();
  }

  override storeRetained(packet: Packet): Promise<void> {
    return this.storeRetainedOf(packet, undefined);
  }

  /** Stores (or clears) a retained message and counts it, against `owner` or its publish's. */
  async storeRetainedOf(packet: Packet, owner: RetainedOwner | undefined): Promise<void> {
    // Both started in one turn: the in-memory store and the count change together. The count
    // looks the publish up by its payload Buffer, so it is given the packet as aedes passed it.
    const storing = super.storeRetained({ ...packet, payload: ownCopy(packet.payload) } as Packet);
    const counting = this.options.retained?.stored(packet, owner);
    await storing;
    await counting;
  }

  // QoS 2 receive state: aedes asks whether a packet id is stored (a resent PUBLISH, a PUBREL),
  // stores it before forwarding a new PUBLISH, and deletes it on PUBREL. The PUBLISH itself is
  // not kept (see PendingQos2); what aedes reads back is the packet id.

  async incomingStorePacket(client: ClientRef, packet: { messageId?: number; payload?: unknown }): Promise<void> {
    const clientId = idOf(client);
    if (!this.pendingQos2.add(clientId, packet.messageId ?? 0)) {
      const held = this.pendingQos2.bytesOf(clientId);
      this.options.onQos2Refused?.(clientId, held);
      this.options.retained?.notStored(packet);
      // aedes closes the connection: MQTT 3.1.1 cannot refuse one PUBLISH [MQTT-4.8.0-1].
      throw new BridgeError('BRIDGE_ERR_QOS2_LIMIT', `the session holds ${held} bytes of QoS 2 messages awaiting PUBREL (mqtt.maxPendingQos2BytesPerSession)`);
    }
  }

  incomingGetPacket(client: ClientRef, packet: { cmd?: string; messageId?: number; payload?: unknown }): Promise<PendingQos2Packet> {
    const messageId = packet.messageId ?? 0;
    if (!this.pendingQos2.has(idOf(client), messageId)) return PACKET_NOT_FOUND;
    // aedes answers a resent PUBLISH from here, without publishing (or storing) it again.
    if (packet.cmd === 'publish') this.options.retained?.notStored(packet);
    return Promise.resolve({ cmd: 'publish', qos: 2, messageId });
  }

  async incomingDelPacket(client: ClientRef, packet: { messageId?: number }): Promise<void> {
    if (!this.pendingQos2.delete(idOf(client), packet.messageId ?? 0)) throw packetNotFound();
  }

  override async cleanIncoming(client: ClientRef): Promise<void> {
    this.pendingQos2.clear(idOf(client));
  }

  /**
   * aedes looks up the persistent sessions to queue every QoS 1/2 publish for; a clean session's
   * subscriptions are not stored here, so with no persistent session there is nothing to find.
   */
  override subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>> {
    return this.persistentClients.size === 0 ? NO_SUBSCRIPTIONS : super.subscriptionsByTopic(topic);
  }

  override addSubscriptions(client: { id: string }, subscriptions: Array<{ topic: string; qos: number }>): Promise<void> {
    this.persistentClients.add(client.id);
    return super.addSubscriptions(client, subscriptions);
  }

  override cleanSubscriptions(client: ClientRef): Promise<void> {
    this.persistentClients.delete(idOf(client));
    return super.cleanSubscriptions(client);
  }

  async outgoingEnqueue(sub: ClientRef, packet: Packet): Promise<void> {
    const clientId = idOf(sub);
    if (this.options.mayQueue?.(clientId, packet.topic) !== false) this.queues.enqueue(clientId, packet);
  }

  /** Queues a message for the persistent sessions whose subscriptions match its topic. */
  outgoingEnqueueCombi(subs: ClientRef[], packet: Packet): Promise<void> {
    return subs.length === 0 ? DONE : this.enqueueFor(subs, packet);
  }

  private async enqueueFor(subs: ClientRef[], packet: Packet): Promise<void> {
    let refused: Set<string> | undefined;
    for (const sub of subs) {
      // [MQTT-4.7.2-1]: aedes' subscription store matches "#" and "+/..." with "$" topics too.
      if (packet.topic.startsWith('$') && (sub.topic?.startsWith('#') || sub.topic?.startsWith('+'))) continue;
      const clientId = idOf(sub);
      if (refused?.has(clientId)) continue; // another of its subscriptions matched too: asked once
      if (this.options.mayQueue?.(clientId, packet.topic) === false) {
        (refused ??= new Set()).add(clientId);
        continue;
      }
      this.queues.enqueue(clientId, packet);
    }
  }

  async outgoingUpdate(client: ClientRef, packet: Packet): Promise<void> {
    this.queues.update(idOf(client), packet);
  }

  async outgoingClearMessageId(client: ClientRef, packet: { messageId?: number; brokerId?: string; brokerCounter?: number }): Promise<Packet | undefined> {
    return this.queues.clear(idOf(client), packet);
  }

  outgoingStream(client: ClientRef): Readable {
    return Readable.from(this.queues.snapshot(idOf(client)));
  }
}

/**
 * Answers made once: aedes asks for each new QoS 2 PUBLISH whether its packet id is held, and for
 * each QoS 1/2 publish which persistent sessions want it; "no" and "none" are the usual answers,
 * and an async function's rejection cost about 1.4 us each (Node tracks it as unhandled until
 * aedes' handler is attached).
 */
const PACKET_NOT_FOUND: Promise<never> = Promise.reject(packetNotFound());
PACKET_NOT_FOUND.catch(() => {});
const NO_SUBSCRIPTIONS: Promise<never[]> = Promise.resolve(Object.freeze([]) as never[]);
const DONE: Promise<void> = Promise.resolve();

/** What the store gives back for a QoS 2 packet id it holds. */
export interface PendingQos2Packet {
  readonly cmd: 'publish';
  readonly qos: 2;
  readonly messageId: number;
}

/**
 * A payload in memory of its own, exactly its size. A parsed PUBLISH's payload is a view into the
 * chunk the socket read (up to 64 KiB, or the whole WebSocket message), and kept as it is a
 * retained message of a few bytes would hold that whole chunk: 300 one-byte retained messages,
 * each sent beside 60 KB of other publishes, held 17.6 MiB while counting 2 KiB against the limits
 * (test/integration/state-memory.test.ts).
 */
function ownCopy(payload: Buffer | string): Buffer | string {
  if (typeof payload === 'string' || payload.length === 0) return payload;
  const copy = Buffer.alloc(payload.length); // not from the shared pool, which a small slice would also hold
  payload.copy(copy);
  return copy;
}

function idOf(ref: ClientRef): string {
  return ref.clientId ?? ref.id ?? '';
}
