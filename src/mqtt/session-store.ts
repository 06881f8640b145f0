import { Readable } from 'node:stream';
import Packet from 'aedes-packet';
import AsyncMemoryPersistence from 'aedes-persistence/asyncPersistence.js';
import { MemorySessionRegistry, type SessionRegistry } from './session-registry.js';

/** What aedes passes to identify a client or a subscription in the outgoing-queue calls. */
interface ClientRef {
  id?: string;
  clientId?: string;
}

export interface SessionStoreOptions {
  /** QoS 1/2 messages kept per client; past this the oldest not yet sent is dropped. */
  maxOfflineMessages: number;
  /** Called for each message dropped that way. */
  onDropped: (clientId: string) => void;
}

/**
 * Per-client queues of QoS 1/2 messages for persistent sessions (sent, awaiting the
 * acknowledgement, or waiting for the client to come back), with the semantics of aedes'
 * in-memory persistence and one difference: a queue is bounded, and an empty one is freed.
 */
export class OfflineQueues {
  private readonly queues = new Map<string, Packet[]>();

  constructor(private readonly options: SessionStoreOptions) {}

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
    throw new Error('no such packet');
  }

  clear(clientId: string, messageId: number | undefined): Packet | undefined {
    const queue = this.queues.get(clientId);
    if (!queue) return undefined;
    const index = queue.findIndex((queued) => queued.messageId === messageId);
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
 * The MQTT state of one bridge: aedes' in-memory persistence (subscriptions, retained messages,
 * wills, QoS 2 receive state) with the outgoing queues replaced by bounded OfflineQueues, and
 * the registry of who owns which client id.
 */
export interface SessionStore {
  /** What aedes is given as its persistence. */
  readonly persistence: SessionPersistence;
  readonly queues: OfflineQueues;
  readonly registry: SessionRegistry;
  /** Ids of clients that hold (or held) subscriptions of a persistent session. */
  persistentClientIds(): string[];
  /** Removes a session's subscriptions, queued messages and QoS 2 receive state. */
  removeSession(clientId: string): Promise<void>;
}

/** The calls of aedes' persistence the bridge itself makes (snapshots). */
export interface SessionPersistence {
  subscriptionsByClient(client: { id: string }): Promise<Array<{ topic: string; qos: number }>>;
  addSubscriptions(client: { id: string }, subscriptions: Array<{ topic: string; qos: number }>): Promise<void>;
  createRetainedStream(pattern: string): AsyncIterable<Packet>;
  storeRetained(packet: Packet): Promise<void>;
}

export function createSessionStore(options: SessionStoreOptions, registry: SessionRegistry = new MemorySessionRegistry()): SessionStore {
  const persistence = new BridgePersistence(new OfflineQueues(options));
  return {
    persistence,
    queues: persistence.queues,
    registry,
    persistentClientIds: () => [...persistence.persistentClients],
    async removeSession(clientId) {
      const client = { id: clientId, clientId };
      persistence.queues.drop(clientId);
      await persistence.cleanSubscriptions(client);
      await persistence.cleanIncoming(client);
    },
  };
}

/** The methods of aedes' in-memory persistence that BridgePersistence calls or overrides. */
interface MemoryPersistence extends SessionPersistence {
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

  constructor(readonly queues: OfflineQueues) {
    super();
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
    this.queues.enqueue(idOf(sub), packet);
  }

  async outgoingEnqueueCombi(subs: ClientRef[], packet: Packet): Promise<void> {
    for (const sub of subs) this.queues.enqueue(idOf(sub), packet);
  }

  async outgoingUpdate(client: ClientRef, packet: Packet): Promise<void> {
    this.queues.update(idOf(client), packet);
  }

  async outgoingClearMessageId(client: ClientRef, packet: { messageId?: number }): Promise<Packet | undefined> {
    return this.queues.clear(idOf(client), packet.messageId);
  }

  outgoingStream(client: ClientRef): Readable {
    return Readable.from(this.queues.snapshot(idOf(client)));
  }
}

function idOf(ref: ClientRef): string {
  return ref.clientId ?? ref.id ?? '';
}
