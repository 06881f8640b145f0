import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import mqemitter from 'mqemitter';
import { QlobberDedup } from 'qlobber';
import type { Logger } from 'pino';
import type { RedisPersistenceConfig } from '../../config/schema.js';
import { BridgeError } from '../../errors.js';
import { RateLimitedWarning } from '../../observability/rate-limited-warning.js';
import { createRedisClient, redactRedisUrl, type RedisClientChoices } from '../../redis/client.js';
import { LocalRoutes } from './local-routes.js';
import { decodeFrame, encodeFrame, type EmittedPacket } from './packet-frame.js';
import { MATCHER_OPTIONS, RemoteRoutes } from './remote-routes.js';
import { RouteFollower } from './route-follower.js';
import { clusterNames, defineClusterCommands, parseNotice, RouteRegistry, type ClusterNames } from './route-registry.js';

/** A listener as aedes gives it to its emitter: the packet, and a callback once it is handled. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- aedes' packets are untyped here
export type EmitterListener = (packet: any, done: () => void) => void;

/** What aedes needs of its `mq` option: the API of mqemitter. */
export interface MessageEmitter {
  on(topic: string, listener: EmitterListener, done?: () => void): this;
  removeListener(topic: string, listener: EmitterListener, done?: () => void): this;
  emit(packet: EmittedPacket, done?: (error?: Error) => void): this;
  close(done: () => void): this;
  readonly current: number;
  readonly concurrency: number;
}

/** Whether the routing between instances works now; `reason` says why not. */
export interface ClusterHealth {
  readonly ready: boolean;
  readonly reason?: string;
}

export interface ClusterStats {
  /** Other instances known. */
  readonly instances: number;
  /** Filters held by this instance's clients. */
  readonly localFilters: number;
  /** Filters held by the other instances (one held by two counts twice). */
  readonly remoteFilters: number;
  /** Publishes sent to another instance (one per target instance; a `$SYS` broadcast counts once). */
  readonly sent: number;
  /** Sends Redis refused or could not take (Redis away): those copies are lost. */
  readonly sendFailed: number;
  /** Sends no instance was listening for (it died, or its connection to Redis is down). */
  readonly unreceived: number;
  /** Publishes received from other instances and delivered here. */
  readonly received: number;
  /** Publishes received while this instance's local delivery was too far behind: dropped. */
  readonly receivedDropped: number;
  /** Messages from Redis this version cannot read (another version of the bridge?). */
  readonly malformed: number;
}

export interface ClusterEmitter extends MessageEmitter {
  /** This instance's id in the cluster (aedes' broker id too). */
  readonly instanceId: string;
  health(): ClusterHealth;
  stats(): ClusterStats;
}

export interface ClusterEmitterOptions {
  readonly settings: RedisPersistenceConfig;
  readonly logger: Logger;
  /** Overrides `settings.instanceTimeoutSeconds` (tests). */
  readonly instanceTimeoutMs?: number;
  readonly instanceId?: string;
  /** Local deliveries at once, as aedes' own emitter (aedes' `concurrency` option). */
  readonly concurrency?: number;
  /** Received publishes waiting for local delivery past which more are dropped. */
  readonly maxQueuedReceived?: number;
  /** Opens a Redis connection (tests count its commands); `createRedisClient` by default. */
  readonly connect?: (purpose: string, choices: RedisClientChoices) => Redis;
}

/** aedes' default for its emitter's `concurrency`. */
export const DEFAULT_EMITTER_CONCURRENCY = 100;
export const DEFAULT_MAX_QUEUED_RECEIVED = 10_000;
/** How long a graceful close waits for Redis to take this instance's departure. */
const LEAVE_TIMEOUT_MS = 2_000;
const SYS_PREFIX = '$SYS/';
const isSys = (topic: string) => topic.startsWith(SYS_PREFIX);
const BROADCAST = Symbol('broadcast');

/**
 * aedes' emitter for one instance of many on the same Redis: every publish is delivered to this
 * instance's own subscribers by an in-process mqemitter, and sent (Redis PUBLISH on the target's
 * channel) to exactly the other instances that hold a matching filter, as the in-memory mirror of
 * the routing table says; a publish nobody else wants costs no Redis command. What arrives from
 * another instance is delivered here only, never sent on. aedes' own `$SYS/` messages that it
 * listens to (takeover of a client id, heartbeats, the persistence's subscription broadcasts) go
 * to every instance.
 */
export async function createClusterEmitter(options: ClusterEmitterOptions): Promise<ClusterEmitter> {
  const emitter = new RedisClusterEmitter(options);
  await emitter.start();
  return emitter;
}

class RedisClusterEmitter implements ClusterEmitter {
  readonly instanceId: string;
  private readonly inner: mqemitter.MQEmitter & { length: number; concurrency: number };
  private readonly names: ClusterNames;
  private readonly commands: Redis;
  private readonly subscriber: Redis;
  private readonly local = new LocalRoutes();
  private readonly remote = new RemoteRoutes();
  /** This instance's `$SYS` listeners (aedes', the persistence's): every instance runs the same, so they say which `$SYS` messages the others want. */
  private readonly sysListeners = new QlobberDedup<EmitterListener>(MATCHER_OPTIONS);
  private readonly follower: RouteFollower;
  private readonly registry: RouteRegistry;
  private readonly timeoutMs: number;
  private readonly maxQueuedReceived: number;
  private readonly inboxes = new Map<string, string>();
  private readonly warning: RateLimitedWarning;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  private started = false;
  private closed = false;
  private synced = false;
  private resyncing: Promise<void> | null = null;
  private resyncAgain = false;
  private lastFailure: unknown = null;
  private counts = { sent: 0, sendFailed: 0, unreceived: 0, received: 0, receivedDropped: 0, malformed: 0 };

  constructor(private readonly options: ClusterEmitterOptions) {
    this.instanceId = options.instanceId ?? randomUUID();
    this.logger = options.logger.child({ clusterInstance: this.instanceId });
    this.warning = new RateLimitedWarning({ logger: this.logger, message: 'routing between bridge instances: trouble' });
    this.timeoutMs = options.instanceTimeoutMs ?? options.settings.instanceTimeoutSeconds * 1000;
    this.maxQueuedReceived = options.maxQueuedReceived ?? DEFAULT_MAX_QUEUED_RECEIVED;
    this.inner = mqemitter({ concurrency: options.concurrency ?? DEFAULT_EMITTER_CONCURRENCY, matchEmptyLevels: true }) as RedisClusterEmitter['inner'];
    this.names = clusterNames(options.settings.keyPrefix);
    const connect = options.connect ?? ((purpose: string, choices: RedisClientChoices) => createRedisClient(options.settings, purpose, choices));
    // The PUBLISHes of one turn of the event loop go in one write (measured: 10-25% more messages across instances).
    this.commands = connect('cluster', { enableAutoPipelining: true });
    this.subscriber = connect('cluster-subscriber', {});
    defineClusterCommands(this.commands);
    for (const [connection, role] of [
      [this.commands, 'commands'],
      [this.subscriber, 'subscriber'],
    ] as const) {
      connection.on('error', (error: Error) => this.warning.warn(`redis-${role}`, { connection: role, err: error.message }));
      connection.on('ready', () => {
        if (this.started && !this.closed) void this.resync();
      });
    }
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.arrived(channel.toString(), message));
    this.registry = new RouteRegistry({
      redis: this.commands,
      names: this.names,
      self: this.instanceId,
      local: this.local,
      timeoutMs: this.timeoutMs,
      onFailed: (error) => {
        this.lastFailure = error;
        this.warning.warn(null, { what: 'could not store this instance’s routes; retried', err: (error as Error).message });
      },
    });
    this.follower = new RouteFollower(this.remote, this.instanceId, (instance) => this.registry.read(instance), (instance, error) => {
      this.lastFailure = error;
      this.warning.warn(null, { what: 'could not read the routes of another instance; retried', other: instance, err: (error as Error).message });
    });
  }

  async start(): Promise<void> {
    const { url } = this.options.settings;
    try {
      await Promise.all([this.commands.connect(), this.subscriber.connect()]);
      await this.resyncOnce();
    } catch (error) {
      this.commands.disconnect();
      this.subscriber.disconnect();
      throw new BridgeError('BRIDGE_ERR_CLUSTER_UNAVAILABLE', `could not join the bridge instances on Redis ${redactRedisUrl(url)}: ${(error as Error).message}`, { cause: error });
    }
    this.synced = true;
    this.started = true;
    this.timer = setInterval(() => void this.tick(), Math.max(1, Math.floor(this.timeoutMs / 3)));
    this.timer.unref();
    this.logger.info({ others: this.remote.instances().length, remoteFilters: this.remote.size }, 'joined the bridge instances on Redis');
  }

  get current(): number {
    return this.inner.current;
  }

  get concurrency(): number {
    return this.inner.concurrency;
  }

  on(topic: string, listener: EmitterListener, done?: () => void): this {
    this.inner.on(topic, listener);
    if (isSys(topic)) {
      this.sysListeners.add(topic, listener);
      if (done) setImmediate(done);
      return this;
    }
    this.local.add(topic, listener);
    // The SUBACK waits until the route is stored and announced: what is published elsewhere after it reaches this client.
    const announced = this.registry.announce();
    if (done) void announced.then(() => done());
    return this;
  }

  removeListener(topic: string, listener: EmitterListener, done?: () => void): this {
    this.inner.removeListener(topic, listener, done);
    if (isSys(topic)) this.sysListeners.remove(topic, listener);
    else if (this.local.remove(topic, listener)) void this.registry.announce();
    return this;
  }

  emit(packet: EmittedPacket, done: (error?: Error) => void = () => {}): this {
    const targets = this.closed ? null : this.targetsOf(packet.topic);
    if (targets === null) {
      this.inner.emit(packet as mqemitter.Message, done);
      return this;
    }
    let waiting = 2;
    let failure: Error | undefined;
    const settle = (error?: Error) => {
      failure ??= error;
      if (--waiting === 0) done(failure);
    };
    this.inner.emit(packet as mqemitter.Message, settle);
    this.send(packet, targets).then(
      () => settle(),
      (error: unknown) => {
        this.counts.sendFailed++;
        this.warning.warn('send', { what: 'a publish could not be sent to another instance', err: (error as Error).message });
        // A device's publish (aedes sets its client id; a will carries its client's) is not failed
        // for this: aedes would close the publisher's connection, and a QoS 2 one would not be
        // forwarded. A downlink publish is: its delivery goes back to RabbitMQ's queue.
        settle(packet.clientId === undefined && !isSys(packet.topic) ? new BridgeError('BRIDGE_ERR_CLUSTER_UNAVAILABLE', `could not send a publish on ${packet.topic} to another bridge instance: ${(error as Error).message}`, { cause: error }) : undefined);
      },
    );
    return this;
  }

  close(done: () => void): this {
    if (this.closed) {
      setImmediate(done);
      return this;
    }
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const leave = this.started ? this.registry.leave() : Promise.resolve();
    void Promise.race([leave, new Promise((resolve) => setTimeout(resolve, LEAVE_TIMEOUT_MS).unref())])
      .catch((error: unknown) => this.logger.warn({ err: (error as Error).message }, 'could not remove this instance from Redis; the others will after its heartbeat expires'))
      .finally(() => {
        this.commands.disconnect();
        this.subscriber.disconnect();
        this.inner.close(done);
      });
    return this;
  }

  health(): ClusterHealth {
    if (this.closed) return { ready: false, reason: 'closed' };
    if (this.commands.status !== 'ready' || this.subscriber.status !== 'ready') return { ready: false, reason: 'Redis unreachable: publishes to and from other bridge instances are lost' };
    if (!this.synced || !this.registry.registered) return { ready: false, reason: 'routes between bridge instances not yet stored and read in Redis' };
    return { ready: true };
  }

  stats(): ClusterStats {
    return { instances: this.remote.instances().length, localFilters: this.local.size, remoteFilters: this.remote.size, ...this.counts };
  }

  /**
   * The other instances to send a publish on `topic` to: none (null), some, or, for a `$SYS`
   * message some listener takes (a takeover, a heartbeat, a subscription to store), all.
   */
  private targetsOf(topic: string): ReadonlySet<string> | typeof BROADCAST | null {
    if (isSys(topic)) return this.remote.instances().length > 0 && this.sysListeners.match(topic).size > 0 ? BROADCAST : null;
    const matched = this.remote.match(topic);
    return matched.size > 0 ? matched : null;
  }

  private async send(packet: EmittedPacket, targets: ReadonlySet<string> | typeof BROADCAST): Promise<void> {
    const frame = encodeFrame(this.instanceId, packet);
    const channels = targets === BROADCAST ? [this.names.sysChannel] : [...targets].map((target) => this.inboxOf(target));
    const receivers = await Promise.all(channels.map((channel) => this.commands.publish(channel, frame)));
    this.counts.sent += channels.length;
    // The `$SYS` channel reaches this instance too.
    const expected = targets === BROADCAST ? this.remote.instances().length + 1 : 1;
    for (const count of receivers) if (count < expected) this.counts.unreceived++;
  }

  private inboxOf(instance: string): string {
    let inbox = this.inboxes.get(instance);
    if (inbox === undefined) {
      if (this.inboxes.size > 1_000) this.inboxes.clear();
      this.inboxes.set(instance, (inbox = this.names.inbox(instance)));
    }
    return inbox;
  }

  /** A message from Redis: a route change, or a publish from another instance to deliver here. */
  private arrived(channel: string, message: Buffer): void {
    if (channel === this.names.routesChannel) {
      const notice = parseNotice(message.toString('utf8'));
      if (notice) this.follower.notice(notice);
      else this.counts.malformed++;
      return;
    }
    let decoded;
    try {
      decoded = decodeFrame(message);
    } catch (error) {
      this.counts.malformed++;
      this.warning.warn('malformed', { what: 'a message from another instance could not be read', err: (error as Error).message });
      return;
    }
    if (decoded.origin === this.instanceId) return;
    if (this.inner.length >= this.maxQueuedReceived) {
      this.counts.receivedDropped++;
      this.warning.warn('behind', { what: 'local delivery too far behind: a publish from another instance dropped', queued: this.inner.length });
      return;
    }
    this.counts.received++;
    this.inner.emit(decoded.packet);
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    if (!this.synced || !this.registry.registered) {
      await this.resync();
      return;
    }
    try {
      await this.registry.heartbeat();
      await this.registry.sweep();
    } catch (error) {
      this.lastFailure = error;
      this.warning.warn('heartbeat', { what: 'could not refresh the heartbeat in Redis', err: (error as Error).message });
    }
  }

  /** Subscribes, registers this instance's routes and reads everyone else's; one at a time. */
  private resync(): Promise<void> {
    if (this.resyncing) {
      this.resyncAgain = true;
      return this.resyncing;
    }
    const run = async () => {
      do {
        this.resyncAgain = false;
        try {
          await this.resyncOnce();
          this.synced = true;
          this.logger.info({ others: this.remote.instances().length, remoteFilters: this.remote.size }, 'routes between bridge instances resynchronised');
        } catch (error) {
          this.synced = false;
          this.warning.warn('resync', { what: 'could not resynchronise the routes with Redis; retried', err: (error as Error).message });
        }
      } while (this.resyncAgain && !this.closed);
    };
    this.resyncing = run().finally(() => {
      this.resyncing = null;
    });
    return this.resyncing;
  }

  private async resyncOnce(): Promise<void> {
    this.synced = false;
    await this.subscriber.subscribe(this.names.routesChannel, this.names.sysChannel, this.names.inbox(this.instanceId));
    this.lastFailure = null;
    await this.registry.register();
    if (!this.registry.registered) {
      const cause = this.lastFailure as Error | null;
      throw new BridgeError('BRIDGE_ERR_CLUSTER_UNAVAILABLE', `could not store the routes of this instance${cause ? `: ${cause.message}` : ''}`, { cause });
    }
    await this.follower.resync(await this.registry.instances());
    await this.registry.sweep();
  }
}
