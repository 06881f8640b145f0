import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import rhea, { type Connection, type Container, type EventContext } from 'rhea';
import type { AmqpBackendOptions } from '../amqp/backend.js';
import { redactUrl } from '../amqp/url.js';
import type { DownlinkSubscription } from '../amqp/downlink-consumers.js';
import type { BridgeConfig } from '../config/schema.js';
import { BridgeError } from '../errors.js';
import type { BrokerRefusal, BrokerState } from '../ports.js';
import { connectOptions, containerIdOf, saslMechanismOf } from './connect-options.js';
import { Amqp10Publisher } from './publisher.js';
import { Amqp10Receivers } from './receivers.js';
import { checkRheaInternals, describePeerError, endpointError, type PeerError } from './rhea-internals.js';

/** The most refused addresses `refused()` (and /readyz) lists at once. */
export const MAX_REPORTED_REFUSALS = 100;

/**
 * The AMQP 1.0 back end (rhea): one connection, opened again after every loss with the backoff
 * of `amqp.reconnect` (exponential, with jitter, forever); on each, the senders of the uplink
 * and a receiver per downlink rule are attached again. It declares nothing: the addresses are the
 * broker's. What the broker refuses (a link to an unknown address) is reported per address in
 * `refused()`, and the connection and the other addresses carry on.
 */
export class Amqp10Backend extends EventEmitter<{ state: [BrokerState]; blocked: [boolean] }> {
  readonly publisher: Amqp10Publisher;
  private readonly receivers: Amqp10Receivers;
  private readonly container: Container;
  private readonly config: BridgeConfig['amqp'];
  private readonly logger: Logger;
  private readonly refusals = new Map<string, BrokerRefusal>();
  private connection: Connection | null = null;
  private currentState: BrokerState = 'connecting';
  private isBlocked = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private firstConnect: Promise<void> | null = null;
  private connected: (() => void) | null = null;
  private closed = false;

  constructor(options: AmqpBackendOptions) {
    super();
    this.config = options.config;
    this.logger = options.logger;
    this.container = rhea.create_container({ id: containerIdOf(this.config) });
    // What the links and sessions did not handle themselves (they do): logged, never thrown.
    this.container.on('error', (error: unknown) => this.logger.warn({ err: error }, 'AMQP 1.0 error'));
    this.publisher = new Amqp10Publisher({
      maxUnsettled: this.config.maxUnconfirmed,
      publishTimeoutMs: this.config.publishTimeoutMs,
      logger: this.logger,
      onCreditStalled: (stalled) => this.setBlocked(stalled),
      onAddressRefused: (address, error) => this.noteRefusal('address', address, error, `uplink to address "${address}"`),
      ...(options.onConfirmLatency ? { onSettleLatency: options.onConfirmLatency } : {}),
    });
    this.receivers = new Amqp10Receivers(options.downlink.subscriptions, {
      handler: options.downlink.handler,
      logger: this.logger,
      ...(options.onUndecodable ? { onUndecodable: options.onUndecodable } : {}),
      onRefused: (subscription, error) => this.noteRefusal('address', subscription.queue, error, `downlink rule ${subscription.rule} (${subscription.configPath})`),
    });
  }

  get state(): BrokerState {
    return this.currentState;
  }

  get server(): string {
    return redactUrl(this.config.url);
  }

  refused(): BrokerRefusal[] {
    return [...this.refusals.values()];
  }

  /** Checks rhea, then starts connecting in the background; resolves at once. */
  async start(): Promise<void> {
    checkRheaInternals();
    this.firstConnect = new Promise((resolve) => (this.connected = resolve));
    this.connect();
    return Promise.resolve();
  }

  async waitForConnect(): Promise<void> {
    if (!this.firstConnect) throw new BridgeError('BRIDGE_ERR_STATE', 'the AMQP back end was not started');
    await this.firstConnect;
  }

  /** AMQP 1.0 declares nothing: a reload of the uplink rules needs nothing here (senders attach as publishes need them). */
  async reconfigureExchanges(): Promise<void> {
    return Promise.resolve();
  }

  async reconfigureDownlink(downlink: readonly DownlinkSubscription[]): Promise<void> {
    await this.receivers.update(downlink);
  }

  stopConsuming(timeoutMs: number): Promise<void> {
    return this.receivers.stop(timeoutMs);
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await this.publisher.close(timeoutMs);
    const connection = this.connection;
    this.connection = null;
    this.receivers.detach();
    this.publisher.detach();
    this.setState('closed');
    if (connection && !connection.is_closed()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        timer.unref();
        connection.once('connection_close', () => resolve());
        connection.once('disconnected', () => resolve());
        connection.close();
      });
    }
  }

  private connect(): void {
    if (this.closed) return;
    let connection: Connection;
    try {
      connection = this.container.connect(connectOptions(this.config));
    } catch (error) {
      this.logger.error({ err: error }, 'AMQP 1.0 connection could not be started');
      this.scheduleReconnect();
      return;
    }
    this.connection = connection;
    connection.on('connection_open', () => {
      if (this.connection !== connection) return;
      this.attempt = 0;
      this.logger.info({ amqp: this.server, protocol: '1.0', sasl: saslMechanismOf(this.config), containerId: containerIdOf(this.config) }, 'AMQP 1.0 connected');
      this.publisher.attach(connection);
      this.receivers.attach(connection);
      this.setState('connected');
      this.connected?.();
      this.connected = null;
    });
    connection.on('connection_error', (context: EventContext) => {
      this.logger.warn({ amqp: this.server, error: describePeerError(endpointError(context.connection)) }, 'the AMQP 1.0 broker closed the connection with an error');
    });
    connection.on('connection_close', () => this.lost(connection, null));
    connection.on('disconnected', (context: EventContext) => this.lost(connection, context.error ?? null));
    connection.on('error', (context: EventContext) => this.logger.warn({ err: context.error }, 'AMQP 1.0 connection error'));
    // Link errors are handled by the publisher and the receivers; these keep rhea from reporting them as unhandled.
    connection.on('sender_error', () => {});
    connection.on('receiver_error', () => {});
    connection.on('session_error', () => {});
  }

  private lost(connection: Connection, error: unknown): void {
    if (this.connection !== connection) return;
    this.connection = null;
    this.publisher.detach();
    this.receivers.detach();
    this.setBlocked(false);
    if (this.closed) return;
    if (!connection.is_closed()) connection.close();
    this.logger.warn({ amqp: this.server, err: error }, this.currentState === 'connected' ? 'AMQP 1.0 connection lost; reconnecting' : 'AMQP 1.0 connection attempt failed');
    if (this.currentState !== 'connecting') this.setState('disconnected');
    this.scheduleReconnect();
  }

  /** The next attempt after `initialDelayMs * factor^attempt`, at most `maxDelayMs`, spread by `jitter`. */
  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const { initialDelayMs, maxDelayMs, factor, jitter } = this.config.reconnect;
    const base = Math.min(maxDelayMs, initialDelayMs * factor ** this.attempt);
    const delay = Math.max(0, Math.round(base * (1 + jitter * (2 * Math.random() - 1))));
    this.attempt++;
    this.logger.info({ attempt: this.attempt, delayMs: delay }, 'AMQP 1.0 reconnect scheduled');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }

  private noteRefusal(kind: BrokerRefusal['kind'], name: string, error: PeerError | null, heldFor: string): void {
    const key = `${heldFor}`;
    if (!error) {
      if (this.refusals.delete(key)) this.logger.info({ address: name }, 'the AMQP 1.0 broker accepts the address again');
      return;
    }
    // Addresses a template rendered are as many as the devices make: the report keeps the first few.
    if (!this.refusals.has(key) && this.refusals.size >= MAX_REPORTED_REFUSALS) return;
    this.refusals.set(key, { kind, name, summary: `address "${name}": the broker refuses it (${describePeerError(error)}); ${heldFor} waits` });
  }

  private setState(state: BrokerState): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.emit('state', state);
  }

  private setBlocked(blocked: boolean): void {
    if (this.isBlocked === blocked) return;
    this.isBlocked = blocked;
    this.emit('blocked', blocked);
  }
}
