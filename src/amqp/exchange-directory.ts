import type { Channel, ChannelModel } from 'amqplib';
import type { Logger } from 'pino';

export type ExchangeStatus = 'exists' | 'missing' | 'unknown';

/** How long a "no such exchange" answer is believed before the exchange is checked again. */
export const MISSING_EXCHANGE_RECHECK_MS = 5_000;

/**
 * Which exchanges exist on the current connection. Publishing to a missing exchange makes
 * RabbitMQ close the channel, failing every other unconfirmed publish on it, so the publisher
 * asks here first; an exchange neither declared nor seen yet is checked once, on a channel of
 * its own (a failed check closes that channel, not the publishing one).
 */
export class ExchangeDirectory {
  private readonly known = new Map<string, { status: 'exists' | 'missing'; at: number }>();
  private model: ChannelModel | null = null;
  private probe: Promise<Channel> | null = null;
  private readonly checks = new Map<string, Promise<ExchangeStatus>>();

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new connection: forget everything but the exchanges just declared on it. */
  attach(model: ChannelModel, declared: Iterable<string>): void {
    this.model = model;
    this.probe = null;
    this.known.clear();
    this.checks.clear();
    this.declared(['', ...declared]); // '' is the default exchange
  }

  /** Exchanges just declared on the current connection. */
  declared(names: Iterable<string>): void {
    for (const name of names) this.known.set(name, { status: 'exists', at: this.now() });
  }

  detach(): void {
    this.model = null;
    this.probe = null;
    this.checks.clear();
  }

  status(name: string): ExchangeStatus {
    const entry = this.known.get(name);
    if (!entry) return 'unknown';
    if (entry.status === 'missing' && this.now() - entry.at >= MISSING_EXCHANGE_RECHECK_MS) return 'unknown';
    return entry.status;
  }

  /** RabbitMQ closed a channel saying this exchange is missing. */
  markMissing(name: string): void {
    this.known.set(name, { status: 'missing', at: this.now() });
  }

  /** Checks (once at a time per name) whether the exchange exists; 'unknown' when not connected. */
  check(name: string): Promise<ExchangeStatus> {
    const running = this.checks.get(name);
    if (running) return running;
    const check = this.runCheck(name).finally(() => this.checks.delete(name));
    this.checks.set(name, check);
    return check;
  }

  private async runCheck(name: string): Promise<ExchangeStatus> {
    const model = this.model;
    if (!model) return 'unknown';
    let channel: Channel;
    try {
      channel = await this.probeChannel(model);
    } catch {
      return 'unknown';
    }
    try {
      await channel.checkExchange(name);
      if (this.model === model) this.known.set(name, { status: 'exists', at: this.now() });
      return 'exists';
    } catch (error) {
      this.probe = null; // a failed check closes the channel
      if ((error as { code?: number }).code !== 404) return 'unknown';
      if (this.model === model) this.markMissing(name);
      this.logger.warn({ exchange: name }, 'exchange does not exist on RabbitMQ; publishes routed to it are dropped and counted');
      return 'missing';
    }
  }

  private probeChannel(model: ChannelModel): Promise<Channel> {
    if (!this.probe) {
      const probe = model.createChannel().then((channel) => {
        channel.on('error', () => {}); // a 404 from checkExchange arrives as a channel error too
        channel.on('close', () => {
          if (this.probe === probe) this.probe = null;
        });
        return channel;
      });
      probe.catch(() => {
        if (this.probe === probe) this.probe = null;
      });
      this.probe = probe;
    }
    return this.probe;
  }
}
