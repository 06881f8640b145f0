import type { Logger } from 'pino';
import { BridgeError, PublishError } from '../errors.js';
import { isAddressDestination } from '../mapping/destination.js';
import type { MessagePublisher, OutboundMessage, PublishCallback } from '../ports.js';
import { DeadlineQueue } from '../util/deadline-queue.js';
import { Fifo } from '../util/fifo.js';
import { refillPoint } from '../util/refill-point.js';
import { classifyAmqpError, refusedResource } from './amqp-errors.js';
import { confirmOutcome, isClosedChannelError } from './amqplib-internals.js';
import type { ExchangeDirectory } from './exchange-directory.js';
import type { PublishChannel } from './framed-channel.js';
import type { ExchangeMessage } from './publish-frames.js';

/** A publish in flight on this many channels that closed before confirming it is failed. */
export const MAX_CHANNEL_ATTEMPTS = 3;

export interface ConfirmPublisherOptions {
  /** At most this many publishes await a confirm at once (`amqp.maxUnconfirmed`). */
  maxUnconfirmed: number;
  /** A publish not confirmed this long after the device's publish arrived fails (`amqp.publishTimeoutMs`). */
  publishTimeoutMs: number;
  exchanges: ExchangeDirectory;
  logger: Logger;
  now?: () => number;
  /** Called with the seconds from writing each publish to its confirm. */
  onConfirmLatency?: (seconds: number) => void;
}

interface Entry {
  readonly message: ExchangeMessage;
  readonly done: PublishCallback;
  readonly deadline: number;
  readonly sequence: number;
  attempts: number;
  settled: boolean;
  /** performance.now() when last written to a channel. */
  sentAt: number;
  /** The refused exchange it waits for, while it is held aside. */
  heldFor: string | null;
}

/**
 * Publishes on one AMQP confirm channel with a bounded window of unconfirmed messages.
 * Messages beyond the window wait here, in order; when amqplib's write buffer is full the
 * publisher waits for `drain`. A publish settles exactly once: confirmed, nacked, or timed
 * out. Publishes unconfirmed when their channel closes (a lost connection) are sent again on
 * the next channel, so a confirm may come for a message RabbitMQ already had: at least once.
 * A publish to an exchange RabbitMQ refuses is held aside, so that it does not block the ones
 * behind it, until the exchange is accepted or its timeout (never acknowledged meanwhile); one
 * that is `atMostOnce` (QoS 0) fails at once instead.
 */
export class ConfirmPublisher implements MessagePublisher {
  private channel: PublishChannel | null = null;
  private generation = 0;
  private inFlight = 0;
  private awaitingDrain = false;
  private awaitingExchange = false;
  private closed = false;
  private sequence = 0;
  private readonly waiting = new Fifo<Entry>();
  /** Publishes held aside, by the refused exchange they wait for. */
  private readonly held = new Map<string, Set<Entry>>();
  /**
   * Every unsettled entry by deadline. Deadlines count from the device's publish, and the flow
   * controller admits clients in turn, so an older publish may come after a newer one.
   */
  private readonly deadlines = new DeadlineQueue<Entry>();
  private orphans: Entry[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** When the sweep the timer runs is due. */
  private timerDeadline = 0;
  private messages = 0;
  private bytes = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly now: () => number;

  /** A full window takes more publishes only once this few await a confirm. */
  private readonly refillAtInFlight: number;

  constructor(private readonly options: ConfirmPublisherOptions) {
    this.now = options.now ?? Date.now;
    this.refillAtInFlight = refillPoint(options.maxUnconfirmed);
  }

  get pendingMessages(): number {
    return this.messages;
  }

  get pendingBytes(): number {
    return this.bytes;
  }

  publish(message: OutboundMessage, done: PublishCallback): void {
    if (this.closed) {
      done(new PublishError('BRIDGE_ERR_PUBLISHER_CLOSED', 'the bridge is shutting down'));
      return;
    }
    if (isAddressDestination(message)) throw new BridgeError('BRIDGE_ERR_INTERNAL', `an AMQP 1.0 message (to address "${message.address}") reached the AMQP 0-9-1 publisher`);
    const entry: Entry = {
      message,
      done,
      deadline: message.receivedAt + this.options.publishTimeoutMs,
      sequence: this.sequence++,
      attempts: 0,
      settled: false,
      sentAt: 0,
      heldFor: null,
    };
    this.messages++;
    this.bytes += message.content.length;
    this.waiting.push(entry);
    this.deadlines.push(entry);
    if (this.timer === null) {
      this.scheduleSweep();
    } else if (entry.deadline < this.timerDeadline) {
      clearTimeout(this.timer); // due before the sweep that is set
      this.scheduleSweep();
    }
    this.pump();
  }

  /** A new confirm channel (after every (re)connect): publishing resumes on it. */
  attach(channel: PublishChannel): void {
    const generation = ++this.generation;
    this.channel = channel;
    this.inFlight = 0;
    this.awaitingDrain = false;
    channel.on('drain', () => {
      if (this.generation !== generation) return;
      this.awaitingDrain = false;
      this.pump();
    });
    channel.on('error', (error: Error) => {
      const classified = classifyAmqpError(error);
      const refused = classified.kind === 'configuration' ? refusedResource(classified.text) : null;
      // The exchange's publishes wait aside from now on; the backend reports the refusal.
      if (refused?.kind === 'exchange') this.options.exchanges.refusedByBroker(refused.name, classified);
      if (classified.kind === 'protocol') this.options.logger.error({ err: error }, 'AMQP publish channel closed by a protocol error');
      else this.options.logger.warn({ replyCode: classified.code, reply: classified.text }, 'RabbitMQ closed the publish channel; unconfirmed publishes go out again on the next one');
    });
    // amqplib's own close listener (registered first) has already failed every unconfirmed
    // publish with "channel closed"; those were collected as orphans and go out again.
    channel.on('close', () => {
      if (this.generation === generation) {
        this.detach();
      } else {
        this.requeueOrphans(); // an old channel closing after its successor came
        this.pump();
      }
    });
    this.requeueOrphans();
    this.releaseAvailable(); // a new connection may accept what the last one refused
  }

  /** The channel is gone: keep unconfirmed publishes, in order, for the next one. */
  detach(): void {
    this.generation++;
    this.channel = null;
    this.inFlight = 0;
    this.awaitingDrain = false;
    this.requeueOrphans();
  }

  private requeueOrphans(): void {
    if (this.orphans.length === 0) return;
    const orphans = this.orphans.sort((a, b) => a.sequence - b.sequence);
    this.orphans = [];
    const retry: Entry[] = [];
    for (const entry of orphans) {
      if (entry.settled) continue;
      if (entry.attempts >= MAX_CHANNEL_ATTEMPTS) {
        this.settle(
          entry,
          new PublishError('BRIDGE_ERR_PUBLISH_ABANDONED', `publish was unconfirmed on ${entry.attempts} AMQP channels that closed`),
        );
      } else {
        retry.push(entry);
      }
    }
    this.waiting.unshiftAll(retry);
    if (retry.length > 0) this.options.logger.info({ count: retry.length }, 'unconfirmed publishes will be sent again on the next channel');
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    // Those held for a refused exchange will not be confirmed meanwhile: failed at once.
    const refused = new PublishError('BRIDGE_ERR_PUBLISHER_CLOSED', 'the bridge shut down while RabbitMQ refused the exchange of this publish');
    for (const held of [...this.held.values()]) for (const entry of [...held].sort((a, b) => a.sequence - b.sequence)) this.settle(entry, refused);
    if (this.messages > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const error = new PublishError('BRIDGE_ERR_PUBLISHER_CLOSED', 'the bridge shut down before RabbitMQ confirmed this publish');
    for (const entry of this.deadlines.drain().sort((a, b) => a.sequence - b.sequence)) this.settle(entry, error);
    this.waiting.drain();
    this.held.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private pump(): void {
    const channel = this.channel;
    if (!channel || this.awaitingDrain || this.awaitingExchange) return;
    const exchanges = this.options.exchanges;
    // Settling runs callbacks that may publish and pump again: re-check the state each time.
    while (this.inFlight < this.options.maxUnconfirmed && this.channel === channel && !this.awaitingDrain && !this.awaitingExchange) {
      const entry = this.waiting.peek();
      if (!entry) return;
      if (entry.settled) {
        this.waiting.shift();
        continue;
      }
      const exchange = entry.message.exchange;
      const status = exchanges.status(exchange);
      if (status === 'unknown') {
        this.awaitExchange(exchange);
        return;
      }
      if (status === 'exists' && this.held.has(exchange)) {
        this.release(exchange); // the exchange's older publishes go first
        continue;
      }
      this.waiting.shift();
      if (status === 'refused') {
        this.holdAside(entry, exchange);
        continue;
      }
      if (!this.send(channel, entry)) return;
    }
  }

  /** Publishes to a refused exchange wait aside until it is accepted (or time out); QoS 0 fails at once. */
  private holdAside(entry: Entry, exchange: string): void {
    if (entry.message.atMostOnce) {
      this.settle(entry, new PublishError('BRIDGE_ERR_EXCHANGE_REFUSED', `RabbitMQ refuses exchange "${exchange}": ${this.refusalOf(exchange)}`));
      return;
    }
    entry.heldFor = exchange;
    let held = this.held.get(exchange);
    if (!held) this.held.set(exchange, (held = new Set()));
    held.add(entry);
  }

  /** Sends the publishes held for exchanges that are no longer refused (after a retry, a reload or a reconnect). */
  releaseAvailable(): void {
    for (const exchange of [...this.held.keys()]) {
      if (this.options.exchanges.status(exchange) !== 'refused') this.release(exchange);
    }
    this.pump();
  }

  /** Puts an exchange's held publishes back at the head of the queue, in their order. */
  private release(exchange: string): void {
    const held = this.held.get(exchange);
    if (!held) return;
    this.held.delete(exchange);
    const entries = [...held].sort((a, b) => a.sequence - b.sequence);
    for (const entry of entries) entry.heldFor = null;
    this.waiting.unshiftAll(entries);
  }

  private refusalOf(exchange: string): string {
    const error = this.options.exchanges.refusal(exchange);
    return error ? `${error.code ?? ''} ${error.text}`.trim() : 'refused';
  }

  /** Sends one entry; false when publishing must stop until the channel drains. */
  private send(channel: PublishChannel, entry: Entry): boolean {
    const generation = this.generation;
    let writable: boolean;
    try {
      writable = channel.publish(entry.message, (error: Error | null) => this.onConfirm(entry, generation, error));
    } catch (error) {
      if (isClosedChannelError(error)) {
        // The channel is closing; its 'close' will detach it and a new one will come.
        this.waiting.unshiftAll([entry]);
        return false;
      }
      this.settle(
        entry,
        error instanceof PublishError ? error : new PublishError('BRIDGE_ERR_PUBLISH_TOO_LARGE', `the publish could not be encoded: ${(error as Error).message}`, { cause: error }),
      );
      return true;
    }
    entry.attempts++;
    entry.sentAt = performance.now();
    this.inFlight++;
    if (!writable) this.awaitingDrain = true;
    return writable;
  }

  private onConfirm(entry: Entry, generation: number, error: Error | null): void {
    const outcome = confirmOutcome(error);
    if (outcome === 'channel-closed') {
      this.orphans.push(entry); // sent again on the next channel
      return;
    }
    if (outcome === 'confirmed') this.options.onConfirmLatency?.((performance.now() - entry.sentAt) / 1000);
    this.settle(entry, outcome === 'confirmed' ? null : new PublishError('BRIDGE_ERR_PUBLISH_NACKED', 'RabbitMQ nacked the publish'));
    if (generation === this.generation) {
      this.inFlight--;
      // A full window refills a quarter at a time (util/refill-point.ts); a drain or an
      // exchange's answer pumps on its own.
      if (this.inFlight <= this.refillAtInFlight) this.pump();
    }
  }

  private awaitExchange(name: string): void {
    this.awaitingExchange = true;
    const generation = this.generation;
    void this.options.exchanges.check(name).then((status) => {
      this.awaitingExchange = false;
      if (generation !== this.generation) return; // the channel changed; attach() pumps
      if (status === 'unknown') {
        // Not answerable now (connection trouble): the channel's close will restart the pump.
        setTimeout(() => this.pump(), 100).unref();
        return;
      }
      this.pump();
    });
  }

  private settle(entry: Entry, error: PublishError | null): void {
    if (entry.settled) return;
    entry.settled = true;
    if (entry.heldFor !== null) this.unhold(entry, entry.heldFor);
    this.messages--;
    this.bytes -= entry.message.content.length;
    // Confirms mostly come in order: drop settled entries from the head at once, so a
    // confirmed message is not kept alive until its timeout would have come.
    this.deadlines.dropSettled();
    entry.done(error);
    if (this.messages === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  private unhold(entry: Entry, exchange: string): void {
    const held = this.held.get(exchange);
    held?.delete(entry);
    if (held?.size === 0) this.held.delete(exchange);
    entry.heldFor = null;
  }

  private scheduleSweep(): void {
    const first = this.deadlines.first();
    if (!first) {
      this.timer = null;
      return;
    }
    this.timerDeadline = first.deadline;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, first.deadline - this.now()));
    this.timer.unref();
  }

  private sweep(): void {
    const now = this.now();
    for (let first = this.deadlines.first(); first && first.deadline <= now; first = this.deadlines.first()) {
      const why = first.heldFor === null ? '' : `: RabbitMQ refuses exchange "${first.heldFor}" (${this.refusalOf(first.heldFor)})`;
      this.settle(first, new PublishError('BRIDGE_ERR_PUBLISH_TIMEOUT', `RabbitMQ did not confirm the publish within ${this.options.publishTimeoutMs} ms${why}`));
    }
    this.scheduleSweep();
  }
}
