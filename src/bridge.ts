import type { Logger } from 'pino';
import { AmqpBackend } from './amqp/backend.js';
import type { DownlinkSubscription } from './amqp/downlink-consumers.js';
import { reloadedSections, restartRequiredChanges } from './config/reload-plan.js';
import { AEDES_MAX_TOPIC_LEVELS, downlinkQueueName, type BridgeConfig, type DownlinkRuleSettings } from './config/schema.js';
import { compileDownlinkRules, type DownlinkRuleResolver } from './mapping/downlink.js';
import { UplinkResolver } from './mapping/uplink.js';
import type { RunningListener } from './mqtt/listeners/listener.js';
import { MqttServer } from './mqtt/server.js';
import { silentLogger } from './observability/logger.js';
import { BridgeMetrics } from './observability/metrics.js';
import { Acl } from './auth/acl.js';
import { Authenticator } from './auth/authenticator.js';
import type { AccessPolicy, PublishRate } from './mqtt/access.js';
import { RateLimiter } from './flow/rate-limiter.js';
import { RateLimitedWarning } from './observability/rate-limited-warning.js';
import { FlowController } from './flow/flow-controller.js';
import { SERVER_UNAVAILABLE } from './mqtt/hooks/authenticate.js';
import { DownlinkPipeline } from './pipeline/downlink.js';
import { UplinkPipeline } from './pipeline/uplink.js';
import { startHttpServer, type Readiness, type RunningHttpServer } from './observability/http-server.js';
import { ListenError } from './errors.js';
import type { BrokerState, DevicePublisher } from './ports.js';

export interface BridgeOptions {
  config: BridgeConfig;
  logger?: Logger;
  /** prom-client's default process metrics in /metrics (default true). */
  processMetrics?: boolean;
}

export interface Bridge {
  /** Starts the listeners and begins connecting to RabbitMQ (in the background). */
  start(): Promise<void>;
  /** Resolves once RabbitMQ is connected and the exchanges are declared. */
  ready(): Promise<void>;
  /** Stops accepting, waits (up to `shutdownTimeoutMs`) for unconfirmed publishes, closes everything. */
  stop(): Promise<void>;
  readonly listeners: readonly RunningListener[];
  readonly metrics: BridgeMetrics;
  readonly amqpState: BrokerState;
  /** Messages accepted from devices and not yet confirmed by RabbitMQ. */
  readonly pendingMessages: number;
  /** The flow controller: state, pending messages and bytes. */
  readonly flow: FlowController;
  /** Re-reads the certificates of the TLS listeners (SIGHUP); new connections use them. */
  reloadCertificates(): void;
  /** The HTTP endpoint (`/metrics`, `/healthz`, `/readyz`), once started; null when disabled. */
  readonly http: RunningHttpServer | null;
  /** What `/readyz` answers. */
  readiness(): Readiness;
  /**
   * Applies a new configuration while devices stay connected: uplink and downlink rules, users,
   * ACL and new exchanges at once, TLS certificates re-read; settings that need a restart keep
   * their old values and are reported.
   */
  reload(next: BridgeConfig): Promise<ReloadResult>;
}

export interface ReloadResult {
  /** The reloadable sections that changed. */
  applied: string[];
  /** Changed settings that keep their old value until a restart. */
  restartRequired: string[];
}

/** The composition root: builds every part, wires them, and owns the start and stop order. */
export function createBridge(options: BridgeOptions): Bridge {
  const { config } = options;
  const logger = options.logger ?? silentLogger();
  const metrics = new BridgeMetrics({ processMetrics: options.processMetrics ?? true });
  // What a reload swaps: each publish and delivery reads these once, so it is routed wholly by
  // the old or wholly by the new rules.
  let running = config;
  let resolver = new UplinkResolver(config.uplink);
  const downlinkRules = compileDownlinkRules(config.downlink);
  let acl = config.acl ? { rules: new Acl(config.acl.rules), onDeniedPublish: config.acl.onDeniedPublish } : null;
  let mqtt: MqttServer | null = null;
  let http: RunningHttpServer | null = null;
  const devices: DevicePublisher = {
    publishToDevices(message, done) {
      if (!mqtt) done(new Error('the MQTT server is not running'));
      else mqtt.publishToDevices(message, done);
    },
  };
  const downlink = new DownlinkPipeline({ devices, maxTopicLevels: AEDES_MAX_TOPIC_LEVELS, metrics, logger: logger.child({ part: 'downlink' }) });
  const amqp = new AmqpBackend({
    config: config.amqp,
    ruleExchanges: resolver.literalExchanges(),
    downlink: { subscriptions: downlinkSubscriptions(config.downlink, downlinkRules), handler: downlink },
    logger: logger.child({ part: 'amqp' }),
    onConfirmLatency: (seconds) => metrics.confirmLatency.observe(seconds),
  });
  const authenticator = new Authenticator(config.auth, logger.child({ part: 'auth' }));
  const access = accessPolicy(() => acl, metrics, logger.child({ part: 'acl' }));
  const flow = new FlowController({
    maxPendingMessages: config.flow.maxPendingMessages,
    maxPendingBytes: config.flow.maxPendingBytes,
    maxInflightPerClient: config.flow.maxInflightPerClient,
    qos0Overflow: config.flow.qos0Overflow,
    publishTimeoutMs: config.amqp.publishTimeoutMs,
    logger: logger.child({ part: 'flow' }),
  });
  let connectedBefore = false;
  amqp.on('state', (state) => {
    flow.setBrokerState(state);
    if (state !== 'connected') return;
    if (connectedBefore) metrics.amqpReconnects.inc();
    connectedBefore = true;
  });
  metrics.observe({
    flowState: () => flow.state,
    flowPendingMessages: () => flow.pendingMessages,
    flowPendingBytes: () => flow.pendingBytes,
    flowWaiting: () => flow.waiting,
    connections: () => mqtt?.connectionsByListener() ?? {},
    bufferedBytes: () => {
      const { total, unauthenticated } = mqtt?.ingress.usage() ?? { total: 0, unauthenticated: 0 };
      return { unauthenticated, authenticated: total - unauthenticated };
    },
    amqpConnected: () => amqp.state === 'connected',
    sessions: () => mqtt?.sessionCounts() ?? { connected: 0, offline: 0 },
    retained: () => mqtt?.retainedUsage() ?? { messages: 0, bytes: 0 },
  });
  amqp.on('blocked', (blocked) => flow.setBlocked(blocked));
  const uplink = new UplinkPipeline({ resolver: () => resolver, publisher: amqp.publisher, flow, metrics, logger: logger.child({ part: 'uplink' }) });
  /** CONNACK return code 3 while RabbitMQ has been unreachable for longer than configured. */
  const connectionRefusal = (): number | null =>
    flow.state === 'disconnected' && flow.disconnectedForMs() >= config.flow.refuseConnectionsAfterMs ? SERVER_UNAVAILABLE : null;
  let state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (state !== 'running') reasons.push(`bridge: ${state}`);
    if (mqtt && mqtt.listeners.length !== config.mqtt.listeners.length) reasons.push('mqtt: not every listener is up');
    if (amqp.state !== 'connected') reasons.push(`amqp: ${amqp.state}`);
    return { ready: reasons.length === 0, reasons };
  };

  return {
    get http() {
      return http;
    },
    readiness,
    get listeners() {
      return mqtt?.listeners ?? [];
    },
    metrics,
    get amqpState() {
      return amqp.state;
    },
    get pendingMessages() {
      return amqp.publisher.pendingMessages;
    },
    flow,

    async start() {
      if (state !== 'new') throw new Error(`bridge cannot start: it is ${state}`);
      state = 'starting';
      // The MQTT side first: downlink deliveries may arrive as soon as AMQP connects.
      mqtt = await MqttServer.create({
        config: config.mqtt,
        handler: uplink,
        logger: logger.child({ part: 'mqtt' }),
        onOfflineDropped: () => metrics.offlineDropped.inc(),
        connectionRefusal,
        onLimitRefused: (limit) => metrics.limitsRefused.inc({ limit }),
        logins: authenticator,
        access,
        onConnectRefused: (code) => metrics.loginsRefused.inc({ return_code: String(code) }),
        rate: publishRate(config.limits, metrics),
        onSessionRefused: (reason) => metrics.sessionsRefused.inc({ reason }),
        onSessionExpired: () => metrics.sessionsExpired.inc(),
      });
      try {
        await mqtt.listen(config.mqtt.listeners);
      } catch (error) {
        await mqtt.close();
        state = 'stopped';
        throw error;
      }
      await amqp.start();
      if (config.http.enabled) {
        try {
          http = await startHttpServer({ host: config.http.host, port: config.http.port, registry: metrics.registry, readiness });
        } catch (error) {
          await mqtt.close();
          await amqp.close(0);
          state = 'stopped';
          throw new ListenError(`http endpoint cannot listen on ${config.http.host}:${config.http.port}: ${(error as Error).message}`, { cause: error });
        }
        logger.info({ address: http.url }, `metrics and health on ${http.url} (/metrics, /healthz, /readyz)`);
      }
      for (const listener of mqtt.listeners) logger.info({ listener: listener.type, address: listener.url }, `MQTT listening on ${listener.url}`);
      if (!config.auth) logger.warn('no auth section in the configuration: every client may connect without credentials');
      logger.info({ amqp: amqp.server, rules: { uplink: config.uplink.length, downlink: config.downlink.length } }, `forwarding to AMQP at ${amqp.server}`);
      state = 'running';
    },

    ready() {
      return amqp.waitForConnect();
    },

    async reload(next) {
      const applied = reloadedSections(running, next);
      const restartRequired = restartRequiredChanges(running, next);
      // Everything that can fail is built first; then the swap.
      const nextResolver = new UplinkResolver(next.uplink);
      const nextDownlinkRules = compileDownlinkRules(next.downlink);
      const nextAcl = next.acl ? { rules: new Acl(next.acl.rules), onDeniedPublish: next.acl.onDeniedPublish } : null;
      // RabbitMQ may refuse a new exchange (one of that name exists with another type): then nothing changes.
      await amqp.reconfigureExchanges(next.amqp.exchanges, nextResolver.literalExchanges());
      resolver = nextResolver;
      authenticator.setSettings(next.auth);
      acl = nextAcl;
      logger.level = next.log.level;
      // What the restart-required settings say stays as it was until a restart.
      running = { ...next, mqtt: running.mqtt, amqp: { ...running.amqp, exchanges: next.amqp.exchanges }, flow: running.flow, limits: running.limits, http: running.http, shutdownTimeoutMs: running.shutdownTimeoutMs };
      // Each downlink consumer resolves with its own rule, so the old consumers keep the old
      // rules until they are cancelled.
      await amqp.reconfigureDownlink(downlinkSubscriptions(next.downlink, nextDownlinkRules));
      this.reloadCertificates();
      metrics.configReloads.inc({ result: 'applied' });
      logger.info({ applied, restartRequired }, applied.length > 0 ? `configuration reloaded: ${applied.join(', ')}` : 'configuration reloaded: no change to apply');
      if (restartRequired.length > 0) logger.warn({ settings: restartRequired }, `these changes need a restart and keep their old values: ${restartRequired.join(', ')}`);
      return { applied, restartRequired };
    },

    reloadCertificates() {
      if (!mqtt) return;
      try {
        const count = mqtt.reloadCertificates();
        logger.info({ listeners: count }, 'TLS certificates re-read');
      } catch (error) {
        logger.error({ err: error }, 'TLS certificates could not be re-read; the listeners keep the previous ones');
      }
    },

    async stop() {
      if (state === 'stopping' || state === 'stopped') return;
      state = 'stopping';
      const pending = amqp.publisher.pendingMessages;
      logger.info({ pending, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: no new connections, waiting for unconfirmed publishes');
      if (mqtt) {
        await mqtt.stopAccepting();
        mqtt.pauseClients();
      }
      flow.close(); // publishes still waiting for admission are not acknowledged
      const deadline = Date.now() + config.shutdownTimeoutMs;
      // /readyz answers 503 from here on (state is stopping); the endpoint closes last.
      await amqp.stopConsuming(config.shutdownTimeoutMs);
      await amqp.publisher.close(Math.max(0, deadline - Date.now()));
      if (mqtt) await mqtt.close();
      await amqp.close(0);
      await http?.close();
      state = 'stopped';
      logger.info({ totals: await metrics.totals(), peakPendingBytes: flow.peakPendingBytes }, 'stopped');
    },
  };
}

/** The queue each downlink rule consumes and, for `exchange` rules, how the bridge declares and binds it. */
export function downlinkSubscriptions(rules: readonly DownlinkRuleSettings[], compiled: readonly DownlinkRuleResolver[]): DownlinkSubscription[] {
  return rules.map((rule, index) => {
    const resolver = compiled[index]!;
    const bindingKey = resolver.rule.bindingKey;
    return {
      rule: rule.name,
      queue: downlinkQueueName(rule),
      binding:
        rule.exchange !== undefined && bindingKey !== null
          ? { exchange: rule.exchange, key: bindingKey, deadLetterExchange: rule.deadLetterExchange }
          : null,
      prefetch: rule.prefetch,
      resolver,
    };
  });
}

/**
 * The current ACL (none: everything allowed) as the MQTT side asks it, with every denial
 * counted and logged (rate-limited).
 */
function accessPolicy(
  current: () => { rules: Acl; onDeniedPublish: 'disconnect' | 'drop' } | null,
  metrics: BridgeMetrics,
  logger: Logger,
): AccessPolicy {
  const warning = new RateLimitedWarning({ logger, message: 'denied by the ACL' });
  return {
    get enforced() {
      return current() !== null;
    },
    canPublish: (identity, topic) => current()?.rules.canPublish(identity, topic) ?? true,
    canSubscribe: (identity, filter) => current()?.rules.canSubscribe(identity, filter) ?? true,
    get onDeniedPublish() {
      return current()?.onDeniedPublish ?? 'disconnect';
    },
    denied(action, clientId, topic) {
      metrics.aclDenied.inc({ action });
      warning.warn(null, { action, clientId, topic });
    },
  };
}

/** `limits.publishesPerSecond` as the MQTT side applies it, with its drops and delays counted. */
function publishRate(limits: BridgeConfig['limits'], metrics: BridgeMetrics): PublishRate | null {
  if (limits.publishesPerSecond === 0) return null;
  const limiter = new RateLimiter({ perSecond: limits.publishesPerSecond, burst: limits.publishBurst ?? limits.publishesPerSecond });
  return {
    take: (clientId) => limiter.take(clientId),
    tryTake: (clientId) => limiter.tryTake(clientId),
    dropped: () => metrics.uplinkDropped.inc({ reason: 'rate_limited' }),
    delayed: () => metrics.rateDelayed.inc(),
  };
}
