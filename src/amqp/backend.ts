import { EventEmitter } from 'node:events';
import amqplib, { type ChannelModel, type ConfirmChannel, type RecoveringChannelModel } from 'amqplib';
import type { Logger } from 'pino';
import type { ConfigLocator } from '../config/load.js';
import type { BridgeConfig } from '../config/schema.js';
import { BridgeError } from '../errors.js';
import { RateLimitedWarning } from '../observability/rate-limited-warning.js';
import type { BrokerRefusal, BrokerState, DeliveryHandler } from '../ports.js';
import { classifyAmqpError, type ClassifiedAmqpError } from './amqp-errors.js';
import { batchWrites, checkAmqplibInternals } from './amqplib-internals.js';
import { ConfirmPublisher } from './confirm-publisher.js';
import { connectOptions } from './connect-options.js';
import { DownlinkConsumers, type DownlinkSubscription } from './downlink-consumers.js';
import { ExchangeDirectory } from './exchange-directory.js';
import { framedChannel } from './framed-channel.js';
import { downlinkRefusal, Refusals, type Refusal } from './refusals.js';
import { declareExchanges, type DeclaredExchanges, type ExchangeSettings } from './topology.js';
import { redactUrl, withHeartbeat } from './url.js';

/** Delay before reopening the publish channel after RabbitMQ closed it on a live connection. */
export const CHANNEL_REOPEN_DELAY_MS = 100;

/**
 * How long "exchange missing" is believed, for an exchange that only a template names (a device
 * chose it): the next publish there after this checks again.
 */
export const RENDERED_EXCHANGE_RECHECK_MS = 5_000;

/** The exchange of one uplink rule: its name, or null when a template renders it. */
export interface UplinkExchange {
  readonly rule: string;
  readonly exchange: string | null;
}

export interface AmqpBackendOptions {
  config: BridgeConfig['amqp'];
  /** Downlink consumers, set up on every (re)connect. */
  downlink: { subscriptions: readonly DownlinkSubscription[]; handler: DeliveryHandler };
  /** The exchange of each uplink rule, in the configuration's order; those named literally are checked on every connect, so a typo shows at once. */
  uplinkExchanges: readonly UplinkExchange[];
  /** Where the configuration's entries are; without it, reports of what RabbitMQ refuses name the entries' paths only. */
  locate?: ConfigLocator | undefined;
  logger: Logger;
  /** Called with the seconds from writing each publish to its confirm. */
  onConfirmLatency?: (seconds: number) => void;
  /** AMQP 1.0: called for each delivery of a rule rejected because its body is not bytes or a string. */
  onUndecodable?: (rule: string) => void;
}

/**
 * The AMQP 0-9-1 back end: one recovering connection (amqplib's recovery, exponential backoff
 * with jitter), the exchanges of the config declared on every (re)connect, and the confirm
 * publisher's channel reopened on every new connection and after a channel error.
 *
 * What RabbitMQ refuses (an exchange of another type or with other arguments, a missing exchange
 * or queue, a resource the user may not use) is a configuration error, not a network fault: it
 * is reported once, the rules that need it wait (their publishes are never acknowledged meanwhile),
 * the connection and every other rule carry on, and it is asked for again every
 * `refusedRetryMs`, on every reload and on every reconnect.
 */
export class AmqpBackend extends EventEmitter<{ state: [BrokerState]; blocked: [boolean] }> {
  readonly publisher: ConfirmPublisher;
  private readonly exchanges: ExchangeDirectory;
  private readonly consumers: DownlinkConsumers;
  private readonly refusals: Refusals;
  /** Exchanges only templates name (devices choose them): warned about, rate-limited, not reported as configuration errors. */
  private readonly renderedRefused: RateLimitedWarning;
  private exchangeSettings: readonly ExchangeSettings[];
  private uplinkExchanges: readonly UplinkExchange[];
  private locate: ConfigLocator | null;
  private connection: RecoveringChannelModel | null = null;
  private model: ChannelModel | null = null;
  private currentState: BrokerState = 'connecting';
  private isBlocked = false;
  private firstConnect: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly logger: Logger;

  constructor(private readonly options: AmqpBackendOptions) {
    super();
    const { config } = options;
    this.logger = options.logger;
    this.exchangeSettings = config.exchanges;
    this.uplinkExchanges = options.uplinkExchanges;
    this.locate = options.locate ?? null;
    this.refusals = new Refusals({ logger: this.logger, retryMs: config.refusedRetryMs, locate: () => this.locate });
    this.renderedRefused = new RateLimitedWarning({
      logger: this.logger,
      message: 'RabbitMQ refuses an exchange a rule template rendered; QoS 1/2 publishes to it wait (unacknowledged) and QoS 0 ones are dropped',
    });
    this.exchanges = new ExchangeDirectory({
      onRefused: (name, error, operation) => this.exchangeRefused(name, error, operation),
      onExists: (name) => this.exchangeAccepted(name),
    });
    this.publisher = new ConfirmPublisher({
      maxUnconfirmed: config.maxUnconfirmed,
      publishTimeoutMs: config.publishTimeoutMs,
      exchanges: this.exchanges,
      logger: this.logger,
      ...(options.onConfirmLatency ? { onConfirmLatency: options.onConfirmLatency } : {}),
    });
    this.consumers = new DownlinkConsumers(options.downlink.subscriptions, options.downlink.handler, this.logger, {
      refusedRetryMs: config.refusedRetryMs,
      onRefused: (subscription, error) => this.downlinkRefused(subscription, error),
      onCleared: (rule, why) => this.refusals.accept(downlinkKey(rule), why === 'started' ? undefined : 'the rule that needed it was changed or removed'),
    });
  }

  /**
   * A reload, first step: the exchanges added to `amqp.exchanges` (or changed) are declared now,
   * and what RabbitMQ refused is asked for again. One RabbitMQ refuses now is reported as at
   * start and its rules wait; the reload goes on. (All of them are declared again on every
   * reconnect.)
   */
  async reconfigureExchanges(exchanges: readonly ExchangeSettings[], uplinkExchanges: readonly UplinkExchange[], locate?: ConfigLocator): Promise<void> {
    const before = new Set(this.exchangeSettings.map((exchange) => JSON.stringify(exchange)));
    const changed = exchanges.filter((exchange) => !before.has(JSON.stringify(exchange)));
    this.exchangeSettings = exchanges;
    this.uplinkExchanges = uplinkExchanges;
    if (locate) this.locate = locate;
    // A refused exchange the configuration no longer declares is checked as it is; one it no longer names at all is no longer reported.
    for (const name of this.exchanges.refusedNames()) if (!this.isDeclared(name)) this.exchanges.forget(name);
    for (const key of this.refusals.keys()) {
      const name = exchangeOfKey(key);
      if (name !== null && !this.referenceTo(name)) this.refusals.accept(key, 'the configuration no longer asks for it');
    }
    const model = this.model;
    if (!model) return; // the next connection declares everything
    try {
      await this.askAgain(model, changed);
    } catch (error) {
      this.logger.warn({ reason: classifyAmqpError(error).text }, 'the AMQP connection went during the reload; the exchanges are declared when it is back');
    }
  }

  /** A reload, second step: the downlink consumers follow the new rules, and those RabbitMQ refused are tried again. */
  async reconfigureDownlink(downlink: readonly DownlinkSubscription[]): Promise<void> {
    await this.consumers.update(downlink);
    await this.consumers.retryNow();
  }

  get state(): BrokerState {
    return this.currentState;
  }

  get server(): string {
    return redactUrl(this.options.config.url);
  }

  /** What RabbitMQ refuses now (for /readyz and the `amqp_refused` metric). */
  refused(): BrokerRefusal[] {
    return this.refusals.list();
  }

  /** Checks amqplib, then starts connecting in the background; resolves at once. */
  async start(): Promise<void> {
    checkAmqplibInternals();
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
      this.forgetConnection();
      this.setBlocked(false);
      this.logger.warn({ err: error, amqp: this.server }, 'AMQP connection lost; reconnecting');
      this.setState('disconnected');
    });
    connection.on('connect-failed', (error: Error) => {
      this.forgetConnection(); // a setup that failed half way
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
    if (!this.firstConnect) throw new BridgeError('BRIDGE_ERR_STATE', 'the AMQP back end was not started');
    await this.firstConnect;
  }

  /** Stops the downlink consumers, waiting up to `timeoutMs` for deliveries being handled. */
  stopConsuming(timeoutMs: number): Promise<void> {
    return this.consumers.stop(timeoutMs);
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
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
    const declared = await declareExchanges(model, this.exchangeSettings);
    this.exchanges.attach(model, declared.declared);
    this.model = model;
    this.noteDeclared(declared);
    this.logger.info(
      { amqp: this.server, exchanges: declared.declared, ...(declared.refused.length > 0 ? { refused: declared.refused.map(([name]) => name) } : {}) },
      'AMQP connected; exchanges declared',
    );
    await this.checkRuleExchanges(model);
    await this.openPublishChannel(model);
    await this.consumers.attach(model);
  }

  private forgetConnection(): void {
    this.model = null;
    this.exchanges.detach();
    this.consumers.detach();
  }

  /** Declares again the refused (and the `changed`) exchanges of the configuration and checks the rules' exchanges not known to exist. */
  private async askAgain(model: ChannelModel, changed: readonly ExchangeSettings[] = []): Promise<void> {
    const refused = new Set(this.exchanges.refusedNames());
    const declared = await declareExchanges(
      model,
      this.exchangeSettings.filter((exchange) => refused.has(exchange.name) || changed.includes(exchange)),
    );
    if (this.model !== model) return;
    this.noteDeclared(declared);
    await this.checkRuleExchanges(model);
    this.publisher.releaseAvailable();
  }

  /** Records what RabbitMQ answered to declarations: refusals reported, ended ones ended. */
  private noteDeclared({ declared, refused }: DeclaredExchanges): void {
    this.exchanges.declared(declared);
    for (const name of declared) this.exchangeAccepted(name);
    for (const [name, error] of refused) {
      this.exchanges.refuse(name, error);
      this.exchangeRefused(name, error, 'declare');
    }
  }

  /** Checks each exchange a rule names literally that is not known to exist (a refused declaration stays refused until declared). */
  private async checkRuleExchanges(model: ChannelModel): Promise<void> {
    const names = new Set(this.uplinkExchanges.flatMap(({ exchange }) => (exchange === null ? [] : [exchange])));
    for (const name of names) {
      const status = this.exchanges.status(name);
      if (status === 'exists' || (status === 'refused' && this.isDeclared(name))) continue;
      if (this.model !== model) return;
      await this.exchanges.check(name);
    }
  }

  /** RabbitMQ refused an exchange: reported once when the configuration names it. Returns how long a publish believes it. */
  private exchangeRefused(name: string, error: ClassifiedAmqpError, operation: Refusal['operation']): number {
    const reference = this.referenceTo(name);
    if (!reference) {
      this.renderedRefused.warn(name, { exchange: name, replyCode: error.code, reply: error.text });
      return RENDERED_EXCHANGE_RECHECK_MS;
    }
    this.refusals.refuse(exchangeKey(name), { resource: { kind: 'exchange', name }, error, operation, ...reference });
    this.scheduleRetry();
    return Infinity;
  }

  private exchangeAccepted(name: string): void {
    const key = exchangeKey(name);
    if (!this.refusals.has(key)) return;
    this.refusals.accept(key);
    this.publisher.releaseAvailable();
  }

  private downlinkRefused(subscription: DownlinkSubscription, error: ClassifiedAmqpError): void {
    this.refusals.refuse(downlinkKey(subscription.rule), downlinkRefusal(subscription, error));
  }

  /** The configuration entry that asks for an exchange and the uplink rules that wait for it; null when only templates may name it. */
  private referenceTo(name: string): Pick<Refusal, 'entry' | 'held'> | null {
    const declaredAt = this.exchangeSettings.findIndex((exchange) => exchange.name === name);
    const rules = this.uplinkExchanges.flatMap(({ rule, exchange }, index) => (exchange === name ? [{ rule, index }] : []));
    if (declaredAt === -1 && rules.length === 0) return null;
    return {
      entry: declaredAt !== -1 ? `amqp.exchanges[${declaredAt}]` : `uplink[${rules[0]!.index}].exchange`,
      held: rules.map(({ rule }) => `uplink rule ${rule}`),
    };
  }

  private isDeclared(name: string): boolean {
    return this.exchangeSettings.some((exchange) => exchange.name === name);
  }

  /** Asks again for the refused exchanges after `refusedRetryMs` (downlink rules retry on their own). */
  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.retryRefused();
    }, this.options.config.refusedRetryMs);
    this.retryTimer.unref();
  }

  private async retryRefused(): Promise<void> {
    const model = this.model;
    if (model) {
      try {
        await this.askAgain(model);
      } catch (error) {
        this.logger.debug({ reason: classifyAmqpError(error).text }, 'could not ask RabbitMQ again for the refused exchanges');
      }
    }
    if (this.refusals.keys().some((key) => exchangeOfKey(key) !== null)) this.scheduleRetry();
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
    this.publisher.attach(framedChannel(channel));
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

const EXCHANGE_KEY = 'exchange:';
const exchangeKey = (name: string) => `${EXCHANGE_KEY}${name}`;
const exchangeOfKey = (key: string) => (key.startsWith(EXCHANGE_KEY) ? key.slice(EXCHANGE_KEY.length) : null);
const downlinkKey = (rule: string) => `downlink:${rule}`;
