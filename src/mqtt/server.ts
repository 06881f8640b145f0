import { rename } from 'node:fs/promises';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { BridgeConfig, ListenerConfig } from '../config/schema.js';
import { ClientIdentities } from './client-identity.js';
import { createAuthenticate, type LoginCheck, type SessionRefusal } from './hooks/authenticate.js';
import { SessionExpiry } from './session-expiry.js';
import type { SessionCounts } from './session-registry.js';
import { createAuthorizeForward, createQueueCheck } from './hooks/authorize-forward.js';
import { createPreConnect } from './hooks/pre-connect.js';
import { createAuthorizePublish } from './hooks/authorize-publish.js';
import { createPublished } from './hooks/published.js';
import type { AcceptConnection, RunningListener } from './listeners/listener.js';
import { startTcpListener } from './listeners/tcp.js';
import { startWsListener, type WsMessageLimit } from './listeners/ws.js';
import { Qos2Forwards } from './qos2-forwards.js';
import { loadSessions, saveSessions } from './session-snapshot.js';
import { createMqttState, type MqttState, type StateHealth } from './state.js';
import { RateLimitedWarning } from '../observability/rate-limited-warning.js';
import type { PublishHandler } from './types.js';
import { AEDES_MAX_TOPIC_LEVELS } from '../config/schema.js';
import { createAuthorizeSubscribe } from './hooks/authorize-subscribe.js';
import type { LimitName } from './limits.js';
import type { AccessPolicy, PublishRate } from './access.js';
import { PacketSizeGuard } from './packet-size-guard.js';
import { IngressBudget, type IngressConnection } from './ingress-budget.js';
import { checkAedesInternals, clientParser, connectedClients, disableCounterDedupe, dropWill, pauseClient } from './aedes-internals.js';
import { guardProtocol } from './protocol-guard.js';
import { writeAcknowledgementsWhole } from './acknowledgement-writer.js';
import { readBufferListsDirectly } from './buffer-list-reads.js';
import type { Violation } from './protocol-conformance.js';
import { SubscribeSequences } from './subscribe-sequence.js';
import type { DevicePublisher, DevicePublishRequest } from '../ports.js';
import type { RetainedUsage } from './retained-ledger.js';
import type { RetainedQuota } from './retained-quota.js';
import { RetainedLimitError } from '../errors.js';
import { createClusterEmitter, type ClusterEmitter, type ClusterStats } from './cluster/cluster-emitter.js';

/** The routing between bridge instances, as readiness and metrics see it. */
export type ClusterView = Pick<ClusterEmitter, 'instanceId' | 'health' | 'stats'>;

/** What the metrics read of the shared state (`mqtt.persistence.type: redis`). */
export interface SharedStateReadings {
  /** The state in Redis can serve (connected, answering). */
  readonly ready: boolean;
  readonly cluster: ClusterStats | null;
}

export interface MqttServerOptions {
  config: BridgeConfig['mqtt'];
  handler: PublishHandler;
  logger: Logger;
  /** Called when an offline session's queue was full and its oldest message was dropped. */
  onOfflineDropped?: (clientId: string) => void;
  /** A CONNACK return code to refuse new connections with, or null to accept them. */
  connectionRefusal?: () => number | null;
  /** Called for everything a configured limit refuses (it is also logged). */
  onLimitRefused?: (limit: LimitName) => void;
  /** Who may log in; null lets everyone. */
  logins?: LoginCheck | null;
  /** Who may publish and subscribe where; null allows everything. */
  access?: AccessPolicy | null;
  /** Called for every CONNACK that refuses a connection, with its return code. */
  onConnectRefused?: (returnCode: number) => void;
  /** The per-client publish rate, or null for none. */
  rate?: PublishRate | null;
  /** Called for each CONNECT refused because its client id is another identity's, or its identity holds its most sessions. */
  onSessionRefused?: (reason: SessionRefusal) => void;
  /** Called for each persistent session removed after `mqtt.sessionExpirySeconds` offline. */
  onSessionExpired?: () => void;
}

/** A client-supplied text cut to a length fit for a log line. */
const clip = (text: string): string => (text.length > 200 ? `${text.slice(0, 200)}…` : text);

/** The MQTT 3.1.1 server the devices talk to: one aedes broker carried by every listener. */
export class MqttServer implements DevicePublisher {
  readonly broker: Aedes;
  private readonly identities: ClientIdentities;
  private running: RunningListener[] = [];
  /** Connections open now, by listener type. */
  private readonly byListener = new Map<string, number>();
  private readonly subscribeSequences: SubscribeSequences;
  private readonly violationWarning: RateLimitedWarning;

  private constructor(
    broker: Aedes,
    identities: ClientIdentities,
    private readonly state: MqttState,
    private readonly expiry: SessionExpiry,
    private readonly retained: RetainedQuota,
    private readonly options: MqttServerOptions,
    private readonly refused: (limit: LimitName, client: { id: string } | null, detail?: string) => void,
    /** What connections hold of bytes not yet taken by aedes, and the limits on it. */
    readonly ingress: IngressBudget,
    /** The routing between bridge instances (`mqtt.persistence.type: redis`), or null for one process. */
    readonly cluster: ClusterView | null = null,
  ) {
    const logger = options.logger;
    this.broker = broker;
    this.identities = identities;
    this.subscribeSequences = new SubscribeSequences(broker);
    this.violationWarning = new RateLimitedWarning({ logger, message: 'connection closed: the packet breaks MQTT 3.1.1 or a topic limit' });
    broker.on('client', (client: Client) => logger.debug({ clientId: client.id }, 'client connected'));
    broker.on('connackSent', (connack: { returnCode?: number }) => {
      if (connack.returnCode) options.onConnectRefused?.(connack.returnCode);
    });
    broker.on('clientDisconnect', (client: Client) => logger.debug({ clientId: client.id }, 'client disconnected'));
    broker.on('clientError', (client: Client, error: Error & { code?: unknown }) => logger.debug({ clientId: client.id, code: error.code, err: error.message }, 'client error'));
    broker.on('connectionError', (_client: Client, error: Error) => logger.debug({ err: error.message }, 'connection error before CONNECT'));
    // aedes emits 'error' when publishing the wills of a dead instance fails (and would throw, unheard).
    (broker as unknown as NodeJS.EventEmitter).on('error', (error: Error) => logger.warn({ err: error.message }, 'the MQTT server could not publish the wills of an instance that died; it tries again later'));
  }

  static async create(options: MqttServerOptions): Promise<MqttServer> {
    const identities = new ClientIdentities();
    const qos2 = new Qos2Forwards();
    let broker: Aedes | null = null;
    const dropWarning = new RateLimitedWarning({ logger: options.logger, message: 'offline queue full: oldest message dropped' });
    const limitWarning = new RateLimitedWarning({ logger: options.logger, message: 'refused by a configured limit' });
    const refused = (limit: LimitName, client: { id: string } | null, detail?: string) => {
      limitWarning.warn(null, { limit, clientId: client?.id, detail: detail && clip(detail) });
      options.onLimitRefused?.(limit);
    };
    const access = options.access ?? null;
    const sessionWarning = new RateLimitedWarning({ logger: options.logger, message: 'CONNECT refused: client id of another user, or too many sessions' });
    const ingress = new IngressBudget({ limits: options.config });
    const state = await createMqttState({
      config: options.config,
      logger: options.logger,
      onDropped: (clientId) => {
        dropWarning.warn(null, { clientId, max: options.config.maxOfflineMessages });
        options.onOfflineDropped?.(clientId);
      },
      onQos2Refused: (clientId, held) => refused('qos2_pending_bytes', { id: clientId }, `${held} bytes of QoS 2 state awaiting PUBREL`),
      mayQueue: access ? createQueueCheck(access) : undefined,
      onCondemned: () => {
        // The others publish these clients' wills now: close them without.
        if (!broker) return;
        for (const client of connectedClients(broker)) {
          dropWill(client);
          client.close();
        }
      },
    });
    const sessions = state.store;
    const retained = state.retained;
    // Every instance on the same Redis is one MQTT server: publishes cross to the instances whose clients subscribe.
    let cluster: ClusterEmitter | null = null;
    try {
      if (options.config.persistence.type === 'redis') cluster = await createClusterEmitter({ settings: options.config.persistence, logger: options.logger, instanceId: state.brokerId });
      broker = await Aedes.createBroker({
        id: state.brokerId,
        ...(cluster && { mq: cluster }),
        persistence: sessions.persistence,
        maxClientsIdLength: options.config.maxClientIdLength,
        preConnect: createPreConnect(identities, options.config.maxClientIdLength),
        authenticate: afterLogin((client) => ingress.loggedIn(client), createAuthenticate(identities, {
          refusal: options.connectionRefusal ?? (() => null),
          logins: options.logins ?? null,
          sessions: { registry: sessions.registry, maxPersistentSessions: options.config.maxSessionsPerUser },
          onSessionRefused: (reason, clientId, username) => {
            sessionWarning.warn(null, { reason, clientId, username });
            options.onSessionRefused?.(reason);
          },
          willAllowed: access
            ? (clientId, username, topic) => {
                const allowed = access.canPublish({ clientId, username }, topic);
                if (!allowed) access.denied('will', clientId, topic);
                return allowed;
              }
            : undefined,
        })),
        connectTimeout: options.config.connectTimeoutMs,
        authorizePublish: createAuthorizePublish(options.handler, identities, qos2, options.config, refused, access, options.rate ?? null, retained),
        authorizeSubscribe: createAuthorizeSubscribe(options.config, refused, access, (client) => identities.get(client)?.username),
        // Our own topic-level limit is checked (and counted) in the hooks; aedes' is its ceiling.
        maxTopicLevels: AEDES_MAX_TOPIC_LEVELS,
        drainTimeout: options.config.drainTimeoutMs,
        published: createPublished(options.handler, identities, qos2, () => broker!),
        authorizeForward: createAuthorizeForward(
          access && {
            access,
            usernameOf: (client) => identities.get(client)?.username,
            denied: (client, topic) => access.denied('deliver', client.id, topic),
          },
        ),
      });
    } catch (error) {
      cluster?.close(() => {});
      await state.close();
      throw error;
    }
    writeAcknowledgementsWhole();
    readBufferListsDirectly();
    try {
      checkAedesInternals(broker);
    } catch (error) {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await state.close();
      throw error;
    }
    const sessionFile = options.config.sessionFile;
    if (sessionFile && state.kind === 'memory') {
      try {
        const restored = await loadSessions(state.store, sessionFile);
        if (restored) options.logger.info({ file: sessionFile, ...restored }, 'persistent sessions restored');
      } catch (error) {
        // Starting without the sessions beats not starting; the file is kept for inspection.
        const aside = `${sessionFile}.unreadable-${Date.now()}`;
        await rename(sessionFile, aside).catch(() => {});
        options.logger.error({ file: sessionFile, movedTo: aside, err: error }, 'could not restore persistent sessions; starting without them');
      }
    }
    const expiry = new SessionExpiry({
      store: sessions,
      expiryMs: options.config.sessionExpirySeconds * 1000,
      onExpired: (clientId) => {
        options.logger.info({ clientId }, 'persistent session expired: removed with its subscriptions and queued messages');
        options.onSessionExpired?.();
      },
      onError: (clientId, error) => options.logger.error({ clientId, err: error }, clientId === undefined ? 'could not list the expired sessions' : 'could not remove an expired session'),
    });
    expiry.start();
    return new MqttServer(broker, identities, state, expiry, retained, options, refused, ingress, cluster);
  }

  get listeners(): readonly RunningListener[] {
    return this.running;
  }

  /** Starts every listener; if one cannot bind, the others are stopped and the error thrown. */
  async listen(listeners: readonly ListenerConfig[]): Promise<readonly RunningListener[]> {
    const accept: AcceptConnection = (stream, request, listener, peer) => {
      if (this.openConnections() >= this.options.config.maxConnections) {
        this.refused('connections', null, `${listener} listener`);
        stream.destroy();
        return null;
      }
      const address = peer?.address ?? (stream as { remoteAddress?: string }).remoteAddress ?? request?.socket.remoteAddress ?? 'unknown';
      let client: Client | null = null;
      const ingress = this.ingress.admit(address, (limit, detail) => {
        this.refused(limit, client, detail);
        stream.destroy();
      });
      if (typeof ingress === 'string') {
        this.refused(ingress, null, `${address}, ${listener} listener`);
        stream.destroy();
        return null;
      }
      this.byListener.set(listener, (this.byListener.get(listener) ?? 0) + 1);
      const handled = this.broker.handle(stream, request);
      client = handled;
      stream.once('close', () => {
        this.byListener.set(listener, (this.byListener.get(listener) ?? 1) - 1);
        const claim = this.identities.get(handled)?.claim;
        if (claim !== undefined) this.state.store.registry.release(handled.id, claim);
        this.retained.connectionClosed(handled);
        ingress.close();
      });
      this.identities.set(handled, { username: undefined, listener, address, certificateCommonName: peer?.certificateCommonName });
      this.ingress.bind(handled, ingress);
      this.guardPackets(handled, ingress);
      disableCounterDedupe(handled);
      guardProtocol(handled, stream, {
        limits: this.options.config,
        sequences: this.subscribeSequences,
        onViolation: (violation, clientId) => this.violated(violation, clientId, address),
      });
      return ingress;
    };
    const wsLimit: WsMessageLimit = { maxPacketBytes: this.options.config.maxPacketBytes };
    try {
      for (const listener of listeners) {
        const running =
          listener.type === 'tcp'
            ? await startTcpListener(listener, accept)
            : listener.type === 'ws'
              ? await startWsListener(listener, accept, wsLimit)
              : listener.type === 'tls'
                ? await startTcpListener(listener, accept, listener)
                : await startWsListener(listener, accept, wsLimit, listener);
        this.running.push(running);
      }
    } catch (error) {
      await this.stopAccepting();
      throw error;
    }
    return this.running;
  }

  /**
   * aedes has no packet size limit over TCP and buffers a whole packet before parsing it: check
   * each packet's announced length as bytes arrive and close the connection before the payload
   * of an oversized one is read; and charge what an incomplete packet (before login: everything
   * the connection sent) holds to the ingress budgets before the parser buffers it.
   */
  private guardPackets(client: Client, ingress: IngressConnection): void {
    const { maxPacketBytes, maxConnectBytes } = this.options.config;
    const maxBeforeLogin = Math.min(maxPacketBytes, maxConnectBytes);
    const guard = new PacketSizeGuard(maxPacketBytes);
    const parser = clientParser(client);
    const parse = parser.parse.bind(parser);
    parser.parse = (chunk: Buffer) => {
      if (ingress.closed) return 0;
      // Before login a packet is the CONNECT or was sent before its CONNACK: none may be bigger than a CONNECT.
      const broken = ingress.authenticated ? guard.check(chunk) : guard.check(chunk, maxBeforeLogin);
      if (broken === null && ingress.follow(ingress.packets, guard)) return parse(chunk);
      if (broken === null) return 0;
      const limit = broken < 0 || broken > maxPacketBytes ? 'packet_size' : 'connect_size';
      ingress.refuse(limit, broken < 0 ? 'malformed remaining length' : `${broken} bytes announced`);
      return 0;
    };
  }

  /** Client ids connected now, and persistent sessions whose client is away. */
  sessionCounts(): SessionCounts {
    return this.state.store.registry.counts();
  }

  /** Whether the MQTT state (Redis, with `mqtt.persistence.type: redis`) can serve now, and why not. */
  stateHealth(): StateHealth {
    return this.state.health();
  }

  /** Why the MQTT side cannot serve as configured now (the state in Redis, the routing between instances); empty when it can. */
  unreadyReasons(): string[] {
    const reasons: string[] = [];
    const state = this.state.health();
    if (!state.ready) reasons.push(`mqtt state: ${state.reason ?? 'not ready'}`);
    const cluster = this.cluster?.health();
    if (cluster && !cluster.ready) reasons.push(`mqtt cluster: ${cluster.reason ?? 'not ready'}`);
    return reasons;
  }

  /** With `mqtt.persistence.type: redis`: whether the state in Redis can serve, and the routing between instances; null with memory. */
  sharedState(): SharedStateReadings | null {
    if (this.state.kind !== 'redis') return null;
    return { ready: this.state.health().ready, cluster: this.cluster?.stats() ?? null };
  }

  /** Removes the persistent sessions offline for longer than `mqtt.sessionExpirySeconds` now (it also happens on a timer). */
  expireSessions(): Promise<number> {
    return this.expiry.sweep();
  }

  /** Counts and logs a connection closed for breaking the protocol or a topic limit. */
  private violated(violation: Violation, clientId: string | undefined, address: string): void {
    this.violationWarning.warn(null, { limit: violation.limit, clientId: clientId && clip(clientId), address, reason: clip(violation.reason) });
    this.options.onLimitRefused?.(violation.limit);
    if (violation.connackReturnCode !== undefined) this.options.onConnectRefused?.(violation.connackReturnCode);
  }

  /** Connections open now, by listener type. */
  connectionsByListener(): Record<string, number> {
    return Object.fromEntries(this.byListener);
  }

  /** The retained messages stored now, and their bytes (topic and payload). */
  retainedUsage(): RetainedUsage {
    return this.retained.usage();
  }

  /** Bytes held for incomplete packets and for connections not yet logged in, by login state. */
  bufferedBytes(): { unauthenticated: number; authenticated: number } {
    const { total, unauthenticated } = this.ingress.usage();
    return { unauthenticated, authenticated: total - unauthenticated };
  }

  /** Connections open now, over all listeners. */
  private openConnections(): number {
    let open = 0;
    for (const count of this.byListener.values()) open += count;
    return open;
  }

  /** Re-reads the certificates of every TLS listener; throws (changing nothing more) if one cannot be read. */
  reloadCertificates(): number {
    let count = 0;
    for (const listener of this.running) {
      if (!listener.reloadCertificates) continue;
      listener.reloadCertificates();
      count++;
    }
    return count;
  }

  async stopAccepting(): Promise<void> {
    await Promise.all(this.running.map((listener) => listener.stopAccepting()));
  }

  /**
   * Publishes to the subscribers (downlink). aedes calls back once the message is stored for
   * offline persistent sessions and written to online subscribers; QoS is lowered per
   * subscription by aedes itself. A retained message the retained limits refuse fails with
   * RetainedLimitError, publishing nothing.
   */
  publishToDevices(message: DevicePublishRequest, done: (error: Error | null) => void): void {
    const packet = { cmd: 'publish' as const, topic: message.topic, payload: message.payload, qos: message.qos, retain: message.retain, dup: false };
    const admitted = (limit: LimitName | null) => {
      if (limit) {
        this.refused(limit, null, `downlink retained message on ${message.topic}`);
        done(new RetainedLimitError(limit, message.topic));
        return;
      }
      this.broker.publish(packet, (error?: Error | null) => {
        if (error) this.retained.abandon(packet);
        done(error ?? null);
      });
    };
    // Downlink messages are nobody's: they count in the retained totals only.
    const limit = this.retained.admit(packet, null, null);
    if (limit instanceof Promise) limit.then(admitted, (error: Error) => done(error));
    else admitted(limit);
  }

  /** Stops reading from every connected client, so no new publish arrives during shutdown. */
  pauseClients(): void {
    for (const client of connectedClients(this.broker)) pauseClient(client);
  }

  /** Disconnects every client, stops the broker, and saves the sessions when configured to. */
  async close(): Promise<void> {
    // A server shutting down is none of the cases that publish a will [MQTT-3.1.2-8]: the
    // devices are fine and reconnect (to another instance, perhaps). aedes would send them all.
    for (const client of connectedClients(this.broker)) dropWill(client);
    await this.expiry.stop();
    this.ingress.stop();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    const sessionFile = this.options.config.sessionFile;
    if (sessionFile && this.state.kind === 'memory') {
      try {
        const saved = await saveSessions(this.state.store, sessionFile);
        this.options.logger.info({ file: sessionFile, ...saved }, 'persistent sessions saved');
      } catch (error) {
        this.options.logger.error({ file: sessionFile, err: error }, 'could not save persistent sessions');
      }
    }
    await this.state.close();
  }
}

type Authenticate = NonNullable<AedesOptions['authenticate']>;

/**
 * Calls `onSuccess` for a client whose login succeeded, before aedes goes on to send the CONNACK
 * (aedes' own 'connackSent' comes a turn of the event loop after the CONNACK is written, by when
 * the client may already have sent more).
 */
function afterLogin(onSuccess: (client: Client) => void, authenticate: Authenticate): Authenticate {
  return (client, username, password, done) =>
    authenticate(client, username, password, (error, success) => {
      if (!error && success) onSuccess(client);
      done(error, success);
    });
}
