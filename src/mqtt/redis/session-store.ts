import { Readable } from 'node:stream';
import type { Client } from 'aedes';
import type { Redis } from 'ioredis';
import type Packet from 'aedes-packet';
import { BridgeError, packetNotFound } from '../../errors.js';
import type { PendingQos2Packet, SessionStore, SessionStoreOptions } from '../session-store.js';
import type { RetainedAccounting } from '../retained-quota.js';
import { RedisPersistenceBase, type StoredSubscription } from './persistence-redis-internals.js';
import { RedisOfflineQueues, messageKey, type QueueTarget } from './offline-queue.js';
import { RedisPendingQos2 } from './pending-qos2.js';
import type { RedisRetainedLedger } from './retained-ledger.js';
import { RedisSessionRegistry } from './session-registry.js';
import { RedisWills } from './wills.js';
import type { StoredPacket } from './packet-codec.js';

export interface RedisSessionStoreOptions extends SessionStoreOptions {
  /** Told of every retained message stored; it stores them (through the Redis ledger). */
  readonly retained: RetainedAccounting;
  /** This instance: aedes' broker id. */
  readonly instanceId: string;
  /** The connection's key prefix. */
  readonly keyPrefix: string;
  /** An instance silent this long is taken for dead: its sessions go offline and its wills are published by another. */
  readonly silentAfterMs: number;
  /** Something the store could not read or record now (Redis away); what it concerns is retried or refused. */
  readonly onError: (what: string, error: unknown) => void;
  readonly now?: () => number;
}

/** The Redis state behind aedes, with its parts (for the timers of src/mqtt/redis/state.ts and for tests). */
export interface RedisSessionStore extends SessionStore {
  readonly registry: RedisSessionRegistry;
  readonly queues: RedisOfflineQueues;
  readonly pendingQos2: RedisPendingQos2;
  readonly wills: RedisWills;
  /** Deletes of QoS 2 state that failed, tried again. */
  retryPendingDeletes(): void;
}

/** What aedes passes to identify a client or a subscription in the outgoing-queue calls. */
interface ClientRef {
  id?: string;
  clientId?: string;
  topic?: string;
}

export function createRedisSessionStore(redis: Redis, ledger: RedisRetainedLedger, options: RedisSessionStoreOptions): RedisSessionStore {
  const registry = new RedisSessionRegistry(redis, {
    instanceId: options.instanceId,
    keyPrefix: options.keyPrefix,
    now: options.now,
    onReleaseFailed: (clientId, error) => options.onError(`the end of the connection of ${clientId}`, error),
    onClaimed: (clientId) => persistence.connecting(clientId),
  });
  const queues = new RedisOfflineQueues(redis, options);
  const pendingQos2 = new RedisPendingQos2(redis, options.maxPendingQos2BytesPerSession ?? Number.POSITIVE_INFINITY);
  const wills = new RedisWills(redis, { instanceId: options.instanceId, keyPrefix: options.keyPrefix, silentAfterMs: options.silentAfterMs, now: options.now });
  const persistence = new RedisBridgePersistence(redis, { registry, queues, pendingQos2, wills, ledger, options });

  return {
    persistence,
    registry,
    queues,
    pendingQos2,
    wills,
    async removeSession(clientId) {
      const client = { id: clientId };
      await queues.drop(clientId);
      await persistence.cleanSubscriptions(client);
      await pendingQos2.clear(clientId);
    },
    retryPendingDeletes: () => persistence.retryPendingDeletes(),
  };
}

interface Parts {
  readonly registry: RedisSessionRegistry;
  readonly queues: RedisOfflineQueues;
  readonly pendingQos2: RedisPendingQos2;
  readonly wills: RedisWills;
  readonly ledger: RedisRetainedLedger;
  readonly options: RedisSessionStoreOptions;
}

/**
 * aedes' persistence in Redis: aedes-persistence-redis for the subscriptions (its trie in
 * memory answers which sessions a topic goes to without a round trip; see
 * persistence-redis-internals.ts), and the bridge's own for the rest, in Lua scripts of one
 * round trip each: bounded offline queues (RedisOfflineQueues), QoS 2 state as packet ids
 * (RedisPendingQos2), retained messages stored with their counts (RedisRetainedLedger) and wills
 * each published by one instance (RedisWills). The library's own versions of those keep whole
 * QoS 2 packets, do not bound the queues, queue a message for N sessions in N + 1 round trips,
 * match retained messages with a glob that a topic with `*`, `?` or `[` breaks, and send some
 * will commands without waiting for them (with Redis away, a rejection nobody handles ends the
 * process).
 *
 * Nothing here makes a stream fail or a promise reject that aedes does not handle: the streams
 * aedes pipes without an error handler (retained messages on SUBSCRIBE, wills) end early, and
 * report, when Redis fails under them.
 */
class RedisBridgePersistence extends RedisPersistenceBase {
  private readonly parts: Parts;
  /** QoS 2 packet ids whose delete failed, treated as absent until it is done: client id -> ids. */
  private readonly pendingDeletes = new Map<string, Set<number>>();
  /** The sessions whose queue is being sent (after a CONNECT). */
  private readonly draining = new Map<string, Drain>();
  /** QoS 2 PUBLISHes whose lookup failed, by the aedes client they came on: their store is refused too (aedes took the failure for "new"). */
  private readonly failedLookups = new WeakMap<object, Set<number>>();

  constructor(redis: Redis, parts: Parts) {
    super({ conn: redis });
    this.parts = parts;
  }

  // Subscriptions: the library's, with two corrections. After a restart its trie also holds QoS 0
  // subscriptions (it adds every stored one in `setup`), for which nothing is queued.

  override async subscriptionsByTopic(topic: string): Promise<StoredSubscription[]> {
    const subscriptions = await super.subscriptionsByTopic(topic);
    return subscriptions.some((subscription) => subscription.qos === 0) ? subscriptions.filter((subscription) => subscription.qos > 0) : subscriptions;
  }

  /** A clean session's CONNECT (and an expired session): its subscriptions and its queue go [MQTT-3.1.2-6]. */
  override async cleanSubscriptions(client: { id: string }): Promise<void> {
    await super.cleanSubscriptions(client);
    await this.parts.queues.drop(client.id);
  }

  // Retained messages.

  async storeRetained(packet: Packet): Promise<void> {
    await this.parts.options.retained.stored(packet);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    return Readable.from(this.quietly(this.parts.ledger.match(patterns), 'the retained messages for a SUBSCRIBE'));
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern]);
  }

  // Offline queues.

  async outgoingEnqueue(sub: ClientRef, packet: Packet): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet);
  }

  /** Queues a message for the persistent sessions whose subscriptions match its topic; resolves once Redis holds it. */
  async outgoingEnqueueCombi(subs: ClientRef[] | undefined, packet: Packet): Promise<void> {
    if (!subs || subs.length === 0) return; // no Redis round trip for a message no persistent session wants
    const matched = new Map<string, number>();
    for (const sub of subs) {
      // [MQTT-4.7.2-1]: aedes' subscription store matches "#" and "+/..." with "$" topics too.
      if (packet.topic.startsWith('$') && (sub.topic?.startsWith('#') || sub.topic?.startsWith('+'))) continue;
      const clientId = idOf(sub);
      matched.set(clientId, (matched.get(clientId) ?? 0) + 1);
    }
    if (matched.size === 0) return;
    let targets: QueueTarget[] = [...matched].map(([clientId, subscriptions]) => ({ clientId, subscriptions }));
    const check = this.parts.options.mayQueue;
    if (check?.enforced) {
      const holders = await this.parts.registry.holders(targets.map((target) => target.clientId));
      targets = targets.filter((target) => check.mayQueue(target.clientId, packet.topic, holders.get(target.clientId)));
    }
    await this.parts.queues.enqueue(targets, packet);
  }

  /**
   * Records the packet id a message is sent with (or its PUBREL). A message that arrives live
   * while the session's queue is still being sent after its CONNECT waits until the queue is out:
   * each queued message takes two round trips, and live ones overtook them (a newer command
   * before the older ones on the same topic [MQTT-4.6.0-5]).
   */
  async outgoingUpdate(client: ClientRef, packet: Packet): Promise<void> {
    const clientId = idOf(client);
    const drain = this.draining.get(clientId);
    if (!drain || packet.cmd !== 'publish' || packet.brokerId === undefined) {
      await this.parts.queues.update(clientId, packet);
      return;
    }
    const id = messageKey(packet);
    if (drain.given.has(id)) {
      // One of the queue's own: the last of them lets the live ones go.
      try {
        await this.parts.queues.update(clientId, packet);
      } finally {
        drain.given.delete(id);
        if (drain.ended && drain.given.size === 0) drain.finish();
      }
      return;
    }
    // Not in the queue when it was read (or not read yet): it came live, and waits.
    const waited = !drain.started || !drain.snapshot.has(id);
    if (waited) await drain.done;
    if (waited && drain.snapshot.has(id)) {
      // It was queued before the queue was read, so the queue sent it (and its PUBACK may have
      // cleared it): this live copy repeats it. QoS 1 allows that, unrecorded; a QoS 2 copy
      // under a second packet id would be delivered twice, so aedes closes the connection and
      // the device comes back to what its queue still holds.
      if (packet.qos === 1) return;
      throw packetNotFound();
    }
    await this.parts.queues.update(clientId, packet);
  }

  async outgoingClearMessageId(client: ClientRef, packet: { messageId?: number; brokerId?: string; brokerCounter?: number }): Promise<StoredPacket | undefined> {
    // A PUBACK from a clean session: aedes records nothing it sends to one, so there is nothing to ask Redis.
    if ((client as { clean?: boolean }).clean === true && packet.brokerId === undefined) return undefined;
    return this.parts.queues.clear(idOf(client), packet);
  }

  /** aedes pipes this with an error handler: a failure fails the CONNECT (or the queue's emptying), and the client comes back. */
  /**
   * A connection took the client id (its CONNECT goes on): from now until its queue is out, live
   * messages for it wait. aedes subscribes the session's filters again before it reads the queue,
   * so a message published meanwhile would otherwise be sent first.
   */
  connecting(clientId: string): void {
    const drain = new Drain(() => {
      if (this.draining.get(clientId) === drain) this.draining.delete(clientId);
    });
    this.draining.set(clientId, drain);
  }

  outgoingStream(client: ClientRef): Readable {
    const clientId = idOf(client);
    let drain = this.draining.get(clientId);
    if (!drain || drain.started) {
      this.connecting(clientId);
      drain = this.draining.get(clientId)!;
    }
    drain.start();
    const stream = Readable.from(
      this.parts.queues.stream(
        clientId,
        (ids) => ids.forEach((id) => drain.snapshot.add(id)),
        (id) => drain.given.add(id),
      ),
    );
    stream.once('end', () => drain.end());
    // Failed or destroyed (its client gone) before its end: the live messages waiting go on.
    stream.once('close', () => {
      if (!drain.ended) drain.finish();
    });
    return stream;
  }

  // QoS 2 receive state: packet ids only (see PendingQos2).

  async incomingStorePacket(client: ClientRef, packet: { messageId?: number; payload?: unknown }): Promise<void> {
    const clientId = idOf(client);
    const messageId = packet.messageId ?? 0;
    if (this.failedLookups.get(client)?.delete(messageId)) {
      this.parts.options.retained.notStored(packet);
      throw new BridgeError('BRIDGE_ERR_REDIS', 'Redis could not tell whether this QoS 2 PUBLISH is a resend: it is not taken');
    }
    let admission;
    try {
      admission = await this.parts.pendingQos2.add(clientId, messageId);
    } catch (error) {
      this.parts.options.retained.notStored(packet);
      throw error;
    }
    this.pendingDeletes.get(clientId)?.delete(messageId); // stored again: a new PUBLISH under that id
    if (!admission.ok) {
      this.parts.options.onQos2Refused?.(clientId, admission.heldBytes);
      this.parts.options.retained.notStored(packet);
      // aedes closes the connection: MQTT 3.1.1 cannot refuse one PUBLISH [MQTT-4.8.0-1].
      throw new BridgeError('BRIDGE_ERR_QOS2_LIMIT', `the session holds ${admission.heldBytes} bytes of QoS 2 messages awaiting PUBREL (mqtt.maxPendingQos2BytesPerSession)`);
    }
  }

  async incomingGetPacket(client: ClientRef, packet: { cmd?: string; messageId?: number; payload?: unknown }): Promise<PendingQos2Packet> {
    const clientId = idOf(client);
    const messageId = packet.messageId ?? 0;
    let held: boolean;
    try {
      held = await this.parts.pendingQos2.has(clientId, messageId);
    } catch (error) {
      if (packet.cmd === 'publish') {
        // aedes takes any failure here for "not stored yet": make its store fail too, so that a
        // resend is neither forwarded twice nor acknowledged.
        let failed = this.failedLookups.get(client);
        if (!failed) this.failedLookups.set(client, (failed = new Set()));
        failed.add(messageId);
      } else {
        // A PUBREL: aedes sends PUBCOMP whatever this answers. Closed first, the client sends
        // the PUBREL again when it is back [MQTT-4.4.0-1], and the id is then released.
        closeClient(client);
      }
      throw error;
    }
    if (!held || (packet.cmd === 'publish' && this.pendingDeletes.get(clientId)?.has(messageId))) throw packetNotFound();
    // aedes answers a resent PUBLISH from here, without publishing (or storing) it again.
    if (packet.cmd === 'publish') this.parts.options.retained.notStored(packet);
    return { cmd: 'publish', qos: 2, messageId };
  }

  async incomingDelPacket(client: ClientRef, packet: { cmd?: string; messageId?: number }): Promise<void> {
    const clientId = idOf(client);
    const messageId = packet.messageId ?? 0;
    let deleted: boolean;
    try {
      deleted = await this.parts.pendingQos2.delete(clientId, messageId);
    } catch (error) {
      if (packet.cmd === 'pubrel') {
        closeClient(client); // no PUBCOMP for a PUBREL whose id is still held: the client resends it
      } else {
        // A PUBLISH that could not be forwarded: its id must not answer the resend as a duplicate.
        let ids = this.pendingDeletes.get(clientId);
        if (!ids) this.pendingDeletes.set(clientId, (ids = new Set()));
        ids.add(messageId);
      }
      throw error;
    }
    if (!deleted) throw packetNotFound();
  }

  async cleanIncoming(client: ClientRef): Promise<void> {
    const clientId = idOf(client);
    this.pendingDeletes.delete(clientId);
    await this.parts.pendingQos2.clear(clientId);
  }

  retryPendingDeletes(): void {
    for (const [clientId, ids] of this.pendingDeletes) {
      for (const messageId of ids) {
        this.parts.pendingQos2.delete(clientId, messageId).then(
          () => {
            ids.delete(messageId);
            if (ids.size === 0 && this.pendingDeletes.get(clientId) === ids) this.pendingDeletes.delete(clientId);
          },
          (error: unknown) => this.parts.options.onError('a QoS 2 packet id to forget', error),
        );
      }
    }
  }

  // Wills.

  async putWill(client: ClientRef, packet: StoredPacket): Promise<void> {
    await this.parts.wills.put(idOf(client), packet);
  }

  async getWill(client: ClientRef): Promise<StoredPacket | null> {
    return this.parts.wills.get(idOf(client));
  }

  async delWill(client: ClientRef & { brokerId?: string }): Promise<StoredPacket | null> {
    return this.parts.wills.delete(idOf(client), client.brokerId);
  }

  /** The wills of dead instances this instance took; aedes publishes them and then deletes each. */
  streamWill(): Readable {
    return Readable.from(this.quietly(this.parts.wills.claimDead(), 'the wills of instances that died'));
  }

  /** A source that ends, instead of failing, when Redis fails under it (aedes pipes these without an error handler). */
  private async *quietly<T>(source: AsyncIterable<T>, what: string): AsyncGenerator<T> {
    try {
      yield* source;
    } catch (error) {
      this.parts.options.onError(what, error);
    }
  }
}

/** How long live messages wait, at most: for a CONNECT to begin reading its queue, and once it is read to its end, for the last queued ones to be sent. */
const DRAIN_WAIT_MAX_MS = 10_000;

/**
 * A session's queue being sent after its CONNECT, from the claim of its client id on: the ids it
 * held when it was read (`snapshot`), those given and not yet sent (`given`), and `done` once all
 * are out (or the sending stopped).
 */
class Drain {
  readonly snapshot = new Set<string>();
  readonly given = new Set<string>();
  started = false;
  ended = false;
  readonly done: Promise<void>;
  private resolve!: () => void;
  private readonly notStarted: NodeJS.Timeout;

  constructor(private readonly onFinish: () => void) {
    this.done = new Promise<void>((resolve) => (this.resolve = resolve));
    // A CONNECT that fails after its claim never reads its queue.
    this.notStarted = setTimeout(() => this.finish(), DRAIN_WAIT_MAX_MS);
    this.notStarted.unref();
  }

  /** The queue is being read. */
  start(): void {
    this.started = true;
    clearTimeout(this.notStarted);
  }

  /** The queue was read to its end: done once the last message given is sent (or after DRAIN_WAIT_MAX_MS). */
  end(): void {
    this.ended = true;
    if (this.given.size === 0) this.finish();
    else setTimeout(() => this.finish(), DRAIN_WAIT_MAX_MS).unref();
  }

  finish(): void {
    this.onFinish();
    this.resolve();
  }
}

function idOf(ref: ClientRef): string {
  return ref.clientId ?? ref.id ?? '';
}

/** Closes an aedes client (the persistence is given the client itself in the QoS 2 calls). */
function closeClient(client: ClientRef): void {
  const close = (client as Partial<Pick<Client, 'close'>>).close;
  if (typeof close === 'function') close.call(client);
}
