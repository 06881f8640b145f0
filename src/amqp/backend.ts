import { EventEmitter } from 'node:events';
import amqplib, { type ChannelModel, type ConfirmChannel, type RecoveringChannelModel } from 'amqplib';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/schema.js';
import type { BrokerState, DeliveryHandler } from '../ports.js';
import { DownlinkConsumers, type DownlinkSubscription } from './downlink-consumers.js';
import { ConfirmPublisher } from './confirm-publisher.js';
import { ExchangeDirectory } from './exchange-directory.js';
import { batchWrites } from './batched-writes.js';
import { connectOptions } from './connect-options.js';
import { declareExchanges } from './topology.js';
import { redactUrl, withHeartbeat } from './url.js';

/** Delay before reopening the publish channel after RabbitMQ closed it on a live connection. */
export const CHANNEL_REOPEN_DELAY_MS = 100;

export interface AmqpBackendOptions {
  config: BridgeConfig['amqp'];
  /** Downlink consumers, set up on every (re)connect. */
  downlink: { subscriptions: readonly DownlinkSubscription[]; handler: DeliveryHandler };
  /** Exchanges that rules name literally; checked on every connect so a typo shows at once. */
  ruleExchanges: readonly string[];
  logger: Logger;
  /** Called with the seconds from writing each publish to its confirm. */
  onConfirmLatency?: (seconds: number) => void;
}

/**
 * The AMQP 0-9-1 back end: one recovering connection (amqplib's recovery, exponential backoff
 * with jitter), the exchanges of the config declared on every (re)connect, and the confirm
 * publisher's channel reopened on every new connection and after a channel error.
 */
export class AmqpBackend extends EventEmitter<{ state: [BrokerState]; blocked: [boolean] }> {
  readonly publisher: ConfirmPublisher;
  private readonly exchanges: ExchangeDirectory;
  private readonly consumers: DownlinkConsumers;
  private exchangeSettings: BridgeConfig['amqp']['exchanges'];
  private ruleExchanges: readonly string[];
  private connection: RecoveringChannelModel | null = null;
  private model: ChannelModel | null = null;
  private currentState: BrokerState = 'connecting';
  private isBlocked = false;
  private firstConnect: Promise<void> | null = null;
  private readonly logger: Logger;

  constructor(private readonly options: AmqpBackendOptions) {
    super();
    this.logger = options.logger;
    this.exchanges = new ExchangeDirectory(this.logger);
    this.publisher = new ConfirmPublisher({
      maxUnconfirmed: options.config.maxUnconfirmed,
      publishTimeoutMs: options.config.publishTimeoutMs,
      exchanges: this.exchanges,
      logger: this.logger,
      ...(options.onConfirmLatency ? { onConfirmLatency: options.onConfirmLatency } : {}),
    });
    this.consumers = new DownlinkConsumers(options.downlink.subscriptions, options.downlink.handler, this.logger);
    this.exchangeSettings = options.config.exchanges;
    this.ruleExchanges = options.ruleExchanges;
  }

  /**
   * A reload, first step: declares the exchanges added to `amqp.exchanges` now (all of them are
   * declared again on every reconnect). When RabbitMQ refuses one (it exists with another type,
   * say) this rejects and the previous list stays, so that later reconnects do not fail on it.
   */
  async reconfigureExchanges(exchanges: BridgeConfig['amqp']['exchanges'], ruleExchanges: readonly string[]): Promise<void> {
    const known = new Set(this.exchangeSettings.map((exchange) => JSON.stringify(exchange)));
    const added = exchanges.filter((exchange) => !known.has(JSON.stringify(exchange)));
    const model = this.model;
    if (model && added.length > 0) {
      const declared = await declareExchanges(model, added);
      if (this.model === model) this.exchanges.declared(declared);
    }
    this.exchangeSettings = exchanges;
    this.ruleExchanges = ruleExchanges;
  }

  /** A reload, second step: the downlink consumers follow the new rules. */
  reconfigureDownlink(downlink: readonly DownlinkSubscription[]): Promise<void> {
    return this.consumers.update(downlink);
  }

  get state(): BrokerState {
    return this.currentState;
  }

  get blocked(): boolean {
    return this.isBlocked;
  }

  get server(): string {
    return redactUrl(this.options.config.url);
  }

  /** Starts connecting in the background; resolves at once. */
  async start(): Promise<void> {
    const { config } = this.options;
    const connection = await amqplib.connect(withHeartbeat(config.url, config.heartbeatSeconds), {
      ...connectOptions(config),
      recovery: {
        initialDelay: config.reconnect.initialDelayMs,
        maxDelay: config.reconnect.maxDelayMs,
        factor: config.reconnect.factor,
        jitter: config.reconnect.jitter,
        maxRetries: Infinity,
        waitForConnect: false,
        setup: (model: ChannelModel) => this.setup(model),
      },
    });
    this.connection = connection;
    connection.on('connect', () => this.setState('connected'));
    connection.on('disconnect', (error: Error) => {
      this.model = null;
      this.exchanges.detach();
      this.consumers.detach();
      this.setBlocked(false);
      this.logger.warn({ err: error, amqp: this.server }, 'AMQP connection lost; reconnecting');
      this.setState('disconnected');
    });
    connection.on('connect-failed', (error: Error) => {
      this.logger.warn({ err: error, amqp: this.server }, 'AMQP connection attempt failed');
      if (this.currentState !== 'connecting') this.setState('disconnected');
    });
    connection.on('reconnect-scheduled', ({ attempt, delay }: { attempt: number; delay: number }) =>
      this.logger.info({ attempt, delayMs: delay }, 'AMQP reconnect scheduled'),
    );
    connection.on('blocked', (reason: string) => {
      this.logger.warn({ reason }, 'RabbitMQ blocked publishing (resource alarm)');
      this.setBlocked(true);
    });
    connection.on('unblocked', () => {
      this.logger.info('RabbitMQ unblocked publishing');
      this.setBlocked(false);
    });
    connection.on('error', (error: Error) => this.logger.warn({ err: error }, 'AMQP connection error'));
    this.firstConnect = connection.waitForConnect().then(() => undefined);
    this.firstConnect.catch(() => {});
  }

  /** Resolves when the first connection is up (and its topology declared). */
  async waitForConnect(): Promise<void> {
    if (!this.firstConnect) throw new Error('AmqpBackend.start() was not called');
    await this.firstConnect;
  }

  /** Stops the downlink consumers, waiting up to `timeoutMs` for deliveries being handled. */
  stopConsuming(timeoutMs: number): Promise<void> {
    return this.consumers.stop(timeoutMs);
  }

  async close(timeoutMs: number): Promise<void> {
    this.consumers.detach();
    await this.publisher.close(timeoutMs);
    const connection = this.connection;
    this.connection = null;
    this.model = null; // the channels closing with the connection are not reopened
    this.setState('closed');
    if (connection) await connection.close().catch(() => {});
  }

  private async setup(model: ChannelModel): Promise<void> {
    if (!batchWrites(model)) this.logger.debug('amqplib internals not as expected: frames are written one by one');
    const { ruleExchanges } = this;
    const declared = await declareExchanges(model, this.exchangeSettings);
    this.exchanges.attach(model, declared);
    this.model = model;
    this.logger.info({ amqp: this.server, exchanges: declared }, 'AMQP connected; exchanges declared');
    for (const name of ruleExchanges) {
      if (this.exchanges.status(name) === 'unknown') {
        const status = await this.exchanges.check(name);
        if (status === 'missing') this.logger.error({ exchange: name }, 'a rule names an exchange that does not exist on RabbitMQ');
      }
    }
    await this.openPublishChannel(model);
    await this.consumers.attach(model);
  }

  private async openPublishChannel(model: ChannelModel): Promise<void> {
    const channel: ConfirmChannel = await model.createConfirmChannel();
    channel.on('close', () => {
      if (this.model !== model) return; // the connection went; setup() opens the next one
      setTimeout(() => {
        if (this.model !== model) return;
        this.openPublishChannel(model).catch((error: Error) =>
          this.logger.error({ err: error }, 'could not reopen the AMQP publish channel'),
        );
      }, CHANNEL_REOPEN_DELAY_MS).unref();
    });
    this.publisher.attach(channel);
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
