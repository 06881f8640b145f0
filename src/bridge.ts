import './quiet-debug.js'; // first: before anything loads `debug`
import type { Logger } from 'pino';
import { Acl } from './auth/acl.js';
import { Authenticator } from './auth/authenticator.js';
import { REAL_PARTS, type BridgeParts, type BrokerSide, type MqttSide } from './bridge-parts.js';
import { accessPolicy, downlinkSubscriptions, publishRate, type AclInForce } from './bridge-wiring.js';
import type { ConfigLocator } from './config/load.js';
import { planReload } from './config/reload-plan.js';
import { AEDES_MAX_TOPIC_LEVELS, type BridgeConfig } from './config/schema.js';
import { BridgeError } from './errors.js';
import { FlowController } from './flow/flow-controller.js';
import { compileDownlinkRules } from './mapping/downlink.js';
import { UplinkResolver } from './mapping/uplink.js';
import { SERVER_UNAVAILABLE } from './protocol/mqtt.js';
import type { RunningListener } from './mqtt/listeners/listener.js';
import type { MqttServerOptions } from './mqtt/server.js';
import type { Readiness, RunningHttpServer } from './observability/http-server.js';
import { silentLogger } from './observability/logger.js';
import { BridgeMetrics } from './observability/metrics.js';
import { DownlinkPipeline } from './pipeline/downlink.js';
import { UplinkPipeline } from './pipeline/uplink.js';
import type { BrokerState, DevicePublisher } from './ports.js';

export interface BridgeOptions {
  config: BridgeConfig;
  logger?: Logger;
  /** prom-client's default process metrics in /metrics (default true). */
  processMetrics?: boolean;
  /** How the parts are made; tests give fakes. */
  parts?: BridgeParts;
  /** Where the configuration's entries are in its file, so that what RabbitMQ refuses is reported as FILE:LINE:COL. */
  locate?: ConfigLocator;
}

/**
 * `idle` until started; `starting` while the MQTT listeners, the broker connection and the
 * HTTP endpoint come up; `running`; `stopping` while everything is undone; `stopped` for good.
 */
export type BridgeState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface ReloadResult {
  /** The reloadable settings that changed. */
  applied: string[];
  /** Changed settings that keep their old value until a restart. */
  restartRequired: string[];
}

/**
 * The composition root: builds every part, wires them, and owns their lifecycle. Whatever
 * fails while starting, and a stop asked for meanwhile, is undone by the same teardown as a
 * normal stop, on the parts that exist by then; reloads run one at a time, only while running,
 * and a stop waits for the one under way.
 */
export class Bridge {
  readonly metrics: BridgeMetrics;
  /** The flow controller: state, pending messages and bytes. */
  readonly flow: FlowController;
  private readonly logger: Logger;
  private readonly parts: BridgeParts;
  private readonly broker: BrokerSide;
  private readonly authenticator: Authenticator;
  private readonly uplink: UplinkPipeline;
  private mqtt: MqttSide | null = null;
  private endpoint: RunningHttpServer | null = null;
  private current: BridgeState = 'idle';
  /** The configuration in force: what a reload applied, and the rest as it started. */
  private config: BridgeConfig;
  // What a reload swaps: each publish and delivery reads these once, so it is routed wholly by
  // the old or wholly by the new rules.
  private resolver: UplinkResolver;
  private acl: AclInForce | null;
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private stopRequested = false;
  /** The reloads queued or under way, settled or not. */
  private reloads: Promise<unknown> = Promise.resolve();

  constructor(options: BridgeOptions) {
    const { config } = options;
    this.config = config;
    this.logger = options.logger ?? silentLogger();
    this.parts = options.parts ?? REAL_PARTS;
    this.metrics = new BridgeMetrics({ processMetrics: options.processMetrics ?? true });
    this.resolver = new UplinkResolver(config.uplink);
    this.acl = aclOf(config);
    const metrics = this.metrics;
    const devices: DevicePublisher = {
      publishToDevices: (message, done) => {
        if (this.mqtt) this.mqtt.publishToDevices(message, done);
        else done(new BridgeError('BRIDGE_ERR_STATE', `the MQTT server is not running (the bridge is ${this.current})`));
      },
    };
    const downlink = new DownlinkPipeline({ devices, maxTopicLevels: AEDES_MAX_TOPIC_LEVELS, metrics, logger: this.logger.child({ part: 'downlink' }) });
    this.broker = this.parts.createBroker({
      config: config.amqp,
      uplinkExchanges: this.resolver.exchangesOfRules(),
      locate: options.locate,
      downlink: { subscriptions: downlinkSubscriptions(config.downlink, compileDownlinkRules(config.downlink)), handler: downlink },
      logger: this.logger.child({ part: 'amqp' }),
      onConfirmLatency: (seconds) => metrics.confirmLatency.observe(seconds),
      onUndecodable: (rule) => metrics.downlinkRejected.inc({ rule, reason: 'undecodable' }),
    });
    this.authenticator = new Authenticator(config.auth, this.logger.child({ part: 'auth' }));
    this.flow = new FlowController({
      maxPendingMessages: config.flow.maxPendingMessages,
      maxPendingBytes: config.flow.maxPendingBytes,
      maxInflightPerClient: config.flow.maxInflightPerClient,
      qos0Overflow: config.flow.qos0Overflow,
      publishTimeoutMs: config.amqp.publishTimeoutMs,
      logger: this.logger.child({ part: 'flow' }),
    });
    let connectedBefore = false;
    this.broker.on('state', (state) => {
      this.flow.setBrokerState(state);
      if (state !== 'connected') return;
      if (connectedBefore) metrics.amqpReconnects.inc();
      connectedBefore = true;
    });
    this.broker.on('blocked', (blocked) => this.flow.setBlocked(blocked));
    metrics.observe({
      flowState: () => this.flow.state,
      flowPendingMessages: () => this.flow.pendingMessages,
      flowPendingBytes: () => this.flow.pendingBytes,
      flowWaiting: () => this.flow.waiting,
      connections: () => this.mqtt?.connectionsByListener() ?? {},
      bufferedBytes: () => this.mqtt?.bufferedBytes() ?? { unauthenticated: 0, authenticated: 0 },
      amqpConnected: () => this.broker.state === 'connected',
      amqpRefused: () => this.broker.refused(),
      sessions: () => this.mqtt?.sessionCounts() ?? { connected: 0, offline: 0 },
      retained: () => this.mqtt?.retainedUsage() ?? { messages: 0, bytes: 0 },
      sharedState: () => this.mqtt?.sharedState() ?? null,
    });
    this.uplink = new UplinkPipeline({ resolver: () => this.resolver, publisher: this.broker.publisher, flow: this.flow, metrics, logger: this.logger.child({ part: 'uplink' }) });
  }

  get state(): BridgeState {
    return this.current;
  }

  get listeners(): readonly RunningListener[] {
    return this.mqtt?.listeners ?? [];
  }

  get amqpState(): BrokerState {
    return this.broker.state;
  }

  /** Messages accepted from devices and not yet confirmed by the broker. */
  get pendingMessages(): number {
    return this.broker.publisher.pendingMessages;
  }

  /** The HTTP endpoint (`/metrics`, `/healthz`, `/readyz`), once started; null when disabled. */
  get http(): RunningHttpServer | null {
    return this.endpoint;
  }

  /** What `/readyz` answers. */
  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.current !== 'running') reasons.push(`bridge: ${this.current}`);
    if (this.mqtt && this.mqtt.listeners.length !== this.config.mqtt.listeners.length) reasons.push('mqtt: not every listener is up');
    if (this.broker.state !== 'connected') reasons.push(`amqp: ${this.broker.state}`);
    if (this.mqtt && this.current === 'running') reasons.push(...this.mqtt.unreadyReasons());
    // Ready with what RabbitMQ refuses listed: the other rules flow (docs/operations.md says why).
    return { ready: reasons.length === 0, reasons, degraded: this.broker.refused().map(({ summary }) => summary) };
  }

  /**
   * Starts the MQTT listeners, begins connecting to the broker (in the background) and starts the
   * HTTP endpoint. If any of it fails, or `stop()` is called meanwhile, what was started is
   * undone and this rejects.
   */
  start(): Promise<void> {
    if (this.current !== 'idle') return Promise.reject(new BridgeError('BRIDGE_ERR_STATE', `the bridge cannot start: it is ${this.current}`));
    this.current = 'starting';
    this.starting = this.bringUp();
    return this.starting;
  }

  /** Resolves once the broker is connected (and, for AMQP 0-9-1, the exchanges declared). */
  ready(): Promise<void> {
    return this.broker.waitForConnect();
  }

  /**
   * Stops accepting, waits (up to `shutdownTimeoutMs`) for unconfirmed publishes, closes
   * everything. Called while starting, the start is abandoned at its next step and undone.
   */
  stop(): Promise<void> {
    switch (this.current) {
      case 'idle':
        this.current = 'stopped';
        return Promise.resolve();
      case 'starting':
        this.stopRequested = true;
        return this.starting!.then(
          () => this.stop(),
          () => this.stopping ?? undefined,
        );
      case 'running':
        // A reload under way finishes first: it may be starting consumers.
        this.stopping = this.reloads.then(() => this.tearDown());
        return this.stopping;
      case 'stopping':
        return this.stopping!;
      case 'stopped':
        return Promise.resolve();
    }
  }

  /**
   * Applies a new configuration while devices stay connected: uplink and downlink rules, users,
   * ACL and new exchanges at once, TLS certificates re-read; settings that need a restart keep
   * their old values and are reported. Reloads run one after another; one asked for while the
   * bridge starts waits for it to run; one while stopping or stopped is refused.
   */
  async reload(next: BridgeConfig, options: { locate?: ConfigLocator } = {}): Promise<ReloadResult> {
    if (this.current === 'starting') await this.starting!.catch(() => {});
    this.mustBeRunning('reload');
    const result = this.reloads.then(() => this.applyReload(next, options.locate));
    this.reloads = result.catch(() => {});
    return result;
  }

  /** Re-reads the certificates of the TLS listeners (SIGHUP); new connections use them. */
  reloadCertificates(): void {
    if (!this.mqtt) return;
    try {
      const count = this.mqtt.reloadCertificates();
      this.logger.info({ listeners: count }, 'TLS certificates re-read');
    } catch (error) {
      this.logger.error({ err: error }, 'TLS certificates could not be re-read; the listeners keep the previous ones');
    }
  }

  private async bringUp(): Promise<void> {
    const { config, logger } = this;
    try {
      // The MQTT side first: downlink deliveries may arrive as soon as the broker connects.
      this.mqtt = await this.parts.createMqtt(this.mqttOptions());
      this.abandonIfStopRequested();
      await this.mqtt.listen(config.mqtt.listeners);
      this.abandonIfStopRequested();
      await this.broker.start();
      this.abandonIfStopRequested();
      if (config.http.enabled) {
        this.endpoint = await this.startHttp();
        this.abandonIfStopRequested();
      }
    } catch (error) {
      logger.error({ err: error }, 'the bridge could not start; undoing what was started');
      this.stopping = this.tearDown();
      await this.stopping;
      throw error;
    }
    if (this.endpoint) logger.info({ address: this.endpoint.url }, `metrics and health on ${this.endpoint.url} (/metrics, /healthz, /readyz)`);
    for (const listener of this.mqtt.listeners) logger.info({ listener: listener.type, address: listener.url }, `MQTT listening on ${listener.url}`);
    if (!config.auth) logger.warn('no auth section in the configuration: every client may connect without credentials');
    logger.info({ amqp: this.broker.server, rules: { uplink: config.uplink.length, downlink: config.downlink.length } }, `forwarding to AMQP at ${this.broker.server}`);
    this.current = 'running';
  }

  private abandonIfStopRequested(): void {
    if (this.stopRequested) throw new BridgeError('BRIDGE_ERR_STATE', 'the bridge was stopped while it was starting');
  }

  private startHttp(): Promise<RunningHttpServer> {
    const { host, port } = this.config.http;
    return this.parts.startHttp({ host, port, registry: this.metrics.registry, readiness: () => this.readiness() });
  }

  /**
   * The one way everything is undone, after a failed or abandoned start as after a normal stop:
   * each part that exists is stopped in order, and a step that fails is logged and does not keep
   * the later ones from running.
   */
  private async tearDown(): Promise<void> {
    this.current = 'stopping';
    const { logger, flow, broker } = this;
    const { shutdownTimeoutMs } = this.config;
    logger.info({ pending: broker.publisher.pendingMessages, timeoutMs: shutdownTimeoutMs }, 'shutting down: no new connections, waiting for unconfirmed publishes');
    const mqtt = this.mqtt;
    const step = async (what: string, work: () => unknown) => {
      try {
        await work();
      } catch (error) {
        logger.error({ err: error, step: what }, `shutting down: could not ${what}; going on`);
      }
    };
    if (mqtt) {
      await step('stop accepting connections', () => mqtt.stopAccepting());
      mqtt.pauseClients();
    }
    flow.close(); // publishes still waiting for admission are not acknowledged
    const deadline = Date.now() + shutdownTimeoutMs;
    // /readyz answers 503 from here on (the state is stopping); the endpoint closes last.
    await step('stop consuming', () => broker.stopConsuming(shutdownTimeoutMs));
    await step('settle the pending publishes', () => broker.publisher.close(Math.max(0, deadline - Date.now())));
    if (mqtt) await step('close the MQTT server', () => mqtt.close());
    await step('close the broker connection', () => broker.close(0));
    const endpoint = this.endpoint;
    if (endpoint) await step('close the HTTP endpoint', () => endpoint.close());
    this.current = 'stopped';
    logger.info({ totals: await this.metrics.totals(), peakPendingBytes: flow.peakPendingBytes }, 'stopped');
  }

  private async applyReload(next: BridgeConfig, locate: ConfigLocator | undefined): Promise<ReloadResult> {
    this.mustBeRunning('reload');
    if (next.amqp.protocol !== this.config.amqp.protocol) {
      // The rules name their destinations in the protocol's terms: new rules for the old back end cannot run.
      throw new BridgeError('BRIDGE_ERR_STATE', `amqp.protocol changes from "${this.config.amqp.protocol}" to "${next.amqp.protocol}" only at a restart; nothing of this configuration was applied`);
    }
    const { applied, restartRequired, effective } = planReload(this.config, next);
    // Everything that can fail is built first; then the swap.
    const resolver = new UplinkResolver(effective.uplink);
    const downlinkRules = compileDownlinkRules(effective.downlink);
    const acl = aclOf(effective);
    // What RabbitMQ refuses is reported and waits; the rest of the reload applies.
    await this.broker.reconfigureExchanges(effective.amqp.exchanges, resolver.exchangesOfRules(), locate);
    this.resolver = resolver;
    this.authenticator.setSettings(effective.auth);
    this.acl = acl;
    this.logger.level = effective.log.level;
    this.config = effective;
    // Each downlink consumer resolves with its own rule, so the old consumers keep the old
    // rules until they are cancelled.
    await this.broker.reconfigureDownlink(downlinkSubscriptions(effective.downlink, downlinkRules));
    this.reloadCertificates();
    this.metrics.configReloads.inc({ result: 'applied' });
    this.logger.info({ applied, restartRequired }, applied.length > 0 ? `configuration reloaded: ${applied.join(', ')}` : 'configuration reloaded: no change to apply');
    if (restartRequired.length > 0) this.logger.warn({ settings: restartRequired }, `these changes need a restart and keep their old values: ${restartRequired.join(', ')}`);
    return { applied, restartRequired };
  }

  private mustBeRunning(what: string): void {
    if (this.current !== 'running') throw new BridgeError('BRIDGE_ERR_STATE', `the bridge cannot ${what}: it is ${this.current}`);
  }

  private mqttOptions(): MqttServerOptions {
    const { config, metrics, flow } = this;
    return {
      config: config.mqtt,
      handler: this.uplink,
      logger: this.logger.child({ part: 'mqtt' }),
      onOfflineDropped: () => metrics.offlineDropped.inc(),
      // CONNACK return code 3 while the broker has been unreachable for longer than configured.
      connectionRefusal: () => (flow.state === 'disconnected' && flow.disconnectedForMs() >= config.flow.refuseConnectionsAfterMs ? SERVER_UNAVAILABLE : null),
      onLimitRefused: (limit) => metrics.limitsRefused.inc({ limit }),
      logins: this.authenticator,
      access: accessPolicy(() => this.acl, metrics, this.logger.child({ part: 'acl' })),
      onConnectRefused: (code) => metrics.loginsRefused.inc({ return_code: String(code) }),
      rate: publishRate(config.limits, metrics),
      onSessionRefused: (reason) => metrics.sessionsRefused.inc({ reason }),
      onSessionExpired: () => metrics.sessionsExpired.inc(),
    };
  }
}

/** Builds a bridge (the same as `new Bridge(options)`). */
export function createBridge(options: BridgeOptions): Bridge {
  return new Bridge(options);
}

function aclOf(config: BridgeConfig): AclInForce | null {
  return config.acl ? { rules: new Acl(config.acl.rules), onDeniedPublish: config.acl.onDeniedPublish } : null;
}
