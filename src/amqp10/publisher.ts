import type { Logger } from 'pino';
import type { Connection, Delivery, EventContext, Sender } from 'rhea';
import { BridgeError, PublishError } from '../errors.js';
import { isAddressDestination } from '../mapping/destination.js';
import type { MessagePublisher, OutboundMessage, PublishCallback } from '../ports.js';
import { DeadlineQueue } from '../util/deadline-queue.js';
import { Fifo } from '../util/fifo.js';
import { toAmqp10Message, type AddressMessage } from './message.js';
import { describePeerError, endSessionLater, endpointError, outcomeError, senderCredit, type PeerError } from './rhea-internals.js';

/** After the broker refused a link to an address, publishes there fail at once for this long; then the link is attached again. */
export const ADDRESS_RETRY_MS = 1_000;
/** Messages waiting while no link grants credit for this long: the broker is taken as blocking (the flow controller's `blocked`). */
export const CREDIT_STALL_MS = 1_000;
/** Most sender links (each on its session) open at once: addresses a template renders are as many as the devices make. */
export const DEFAULT_MAX_SENDER_LINKS = 1_000;

export type Amqp10Outcome = 'accepted' | 'rejected' | 'released' | 'modified';

export interface Amqp10PublisherOptions {
  /** Most transfers sent and not yet settled by the broker, over all addresses. */
  maxUnsettled: number;
  /** Most sender links open at once (DEFAULT_MAX_SENDER_LINKS); past it the least recently used idle one is detached. */
  maxSenderLinks?: number;
  publishTimeoutMs: number;
  logger: Logger;
  /** Called with the seconds from sending each transfer to its `accepted`. */
  onSettleLatency?: (seconds: number) => void;
  /** Called when the broker grants no credit to messages that wait (true) and when it grants some again (false). */
  onCreditStalled?: (stalled: boolean) => void;
  /** Called with every address the broker refuses (its error condition) and accepts again (null). */
  onAddressRefused?: (address: string, error: PeerError | null) => void;
  now?: () => number;
}

interface Entry {
  readonly message: AddressMessage;
  readonly done: PublishCallback;
  readonly deadline: number;
  readonly sequence: number;
  settled: boolean;
  sentAt: number;
}

/** One address: its sender link on the current connection, what waits for it, what is in flight on it. */
class AddressLink {
  sender: Sender | null = null;
  /** Transfers handed to rhea on this sender (see senderCredit). */
  handedOver = 0;
  readonly waiting = new Fifo<Entry>();
  readonly inFlight = new Map<Delivery, Entry>();
  refusedUntil = 0;
  refusal: PeerError | null = null;
  /** When a message last went out on it (for detaching the least recently used). */
  lastUsed = 0;

  constructor(readonly address: string) {}

  get idle(): boolean {
    return this.waiting.length === 0 && this.inFlight.size === 0;
  }
}

/**
 * The AMQP 1.0 uplink: one sender link per address (attached on first use, again after every
 * reconnect), each message an unsettled transfer. A publish is done once the broker settles it:
 * `accepted` acknowledges the device; `rejected`, `released` and `modified` never do (the device
 * retransmits). Transfers unsettled when the connection goes are sent again on the next one, in
 * their order, and their devices wait meanwhile. Link credit bounds what is sent; what waits for
 * credit counts as pending, so the flow controller throttles the devices, and credit withheld
 * longer than CREDIT_STALL_MS reports the broker as blocking.
 */
export class Amqp10Publisher implements MessagePublisher {
  private readonly links = new Map<string, AddressLink>();
  /** The links with messages waiting, for the pump after a settlement. */
  private readonly hungry = new Set<AddressLink>();
  private readonly deadlines = new DeadlineQueue<Entry>();
  private connection: Connection | null = null;
  private inFlight = 0;
  private messages = 0;
  private bytes = 0;
  private sequence = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private timerDeadline = Infinity;
  private stallTimer: NodeJS.Timeout | null = null;
  private stalled = false;
  private idleWaiters: Array<() => void> = [];
  private readonly now: () => number;

  constructor(private readonly options: Amqp10PublisherOptions) {
    this.now = options.now ?? Date.now;
  }

  get pendingMessages(): number {
    return this.messages;
  }

  get pendingBytes(): number {
    return this.bytes;
  }

  /** The transfers sent and not yet settled by the broker. */
  get unsettled(): number {
    return this.inFlight;
  }

  publish(message: OutboundMessage, done: PublishCallback): void {
    if (this.closed) {
      done(new PublishError('BRIDGE_ERR_PUBLISHER_CLOSED', 'the bridge is shutting down'));
      return;
    }
    if (!isAddressDestination(message)) {
      throw new BridgeError('BRIDGE_ERR_INTERNAL', `an AMQP 0-9-1 message (to exchange "${message.exchange}") reached the AMQP 1.0 publisher`);
    }
    const entry: Entry = { message, done, deadline: message.receivedAt + this.options.publishTimeoutMs, sequence: this.sequence++, settled: false, sentAt: 0 };
    this.messages++;
    this.bytes += message.content.length;
    this.deadlines.push(entry);
    if (this.timer === null || entry.deadline < this.timerDeadline) this.scheduleSweep();
    const link = this.linkOf(message.address);
    if (this.refused(link)) {
      this.failRefused(entry, link);
      return;
    }
    link.waiting.push(entry);
    this.hungry.add(link);
    this.pump(link);
  }

  /** A new connection: the senders are attached again as publishes need them, and what waited goes out. */
  attach(connection: Connection): void {
    this.connection = connection;
    this.pumpAll();
  }

  /** The connection is gone: unsettled transfers wait, in their order, for the next one. */
  detach(): void {
    this.connection = null;
    let resent = 0;
    for (const link of this.links.values()) {
      link.sender = null;
      resent += this.requeueInFlight(link);
    }
    this.inFlight = 0;
    if (resent > 0) this.options.logger.info({ count: resent }, 'unsettled AMQP 1.0 transfers will be sent again on the next connection');
  }

  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.messages > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const closing = new PublishError('BRIDGE_ERR_PUBLISHER_CLOSED', 'the bridge shut down before the broker settled the publish');
    for (const entry of this.deadlines.drain()) this.settle(entry, closing);
    if (this.timer) clearTimeout(this.timer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.timer = null;
    this.stallTimer = null;
  }

  private linkOf(address: string): AddressLink {
    let link = this.links.get(address);
    if (!link) this.links.set(address, (link = new AddressLink(address)));
    return link;
  }

  private refused(link: AddressLink): boolean {
    return link.refusal !== null && this.now() < link.refusedUntil;
  }

  private pump(link: AddressLink): void {
    const connection = this.connection;
    if (!connection || link.waiting.length === 0) return;
    if (this.refused(link)) {
      for (let entry = link.waiting.shift(); entry; entry = link.waiting.shift()) this.failRefused(entry, link);
      return;
    }
    const sender = link.sender ?? this.openSender(connection, link);
    let credit = this.creditLeft(sender, link);
    while (this.inFlight < this.options.maxUnsettled && credit > 0) {
      const entry = link.waiting.shift();
      if (!entry) break;
      if (entry.settled) continue;
      this.send(sender, link, entry);
      credit--;
    }
    if (link.waiting.length > 0 && credit <= 0) this.watchCredit();
  }

  /** The credit not yet spoken for: the link's, less what was handed to rhea and not yet written. */
  private creditLeft(sender: Sender, link: AddressLink): number {
    if (!sender.is_open()) return 0;
    const { credit, written } = senderCredit(sender);
    // A drain [AMQP 1.0, 2.6.7] counts deliveries up without transfers: what was handed over is all written.
    if (written > link.handedOver) link.handedOver = written;
    return credit - (link.handedOver - written);
  }

  private send(sender: Sender, link: AddressLink, entry: Entry): void {
    entry.sentAt = performance.now();
    const delivery = sender.send(toAmqp10Message(entry.message));
    link.handedOver++;
    link.lastUsed = this.now();
    link.inFlight.set(delivery, entry);
    this.inFlight++;
    this.creditCame();
  }

  /** Detaches the least recently used idle sender when as many are open as allowed; forgets its address. */
  private makeRoomForSender(): void {
    const open = [...this.links.values()].filter((candidate) => candidate.sender !== null);
    if (open.length < (this.options.maxSenderLinks ?? DEFAULT_MAX_SENDER_LINKS)) return;
    let oldest: AddressLink | null = null;
    for (const candidate of open) if (candidate.idle && (!oldest || candidate.lastUsed < oldest.lastUsed)) oldest = candidate;
    if (!oldest) return; // every open link has work: one more it is
    const sender = oldest.sender!;
    oldest.sender = null;
    sender.close();
    endSessionLater(sender.session);
    if (oldest.refusal === null) this.links.delete(oldest.address);
  }

  private openSender(connection: Connection, link: AddressLink): Sender {
    this.makeRoomForSender();
    // A session per link: RabbitMQ 3.x ends the whole session when it refuses an address, which must not take the other addresses' links with it.
    const session = connection.create_session();
    session.open();
    // `modified` is an outcome of its own here, not rhea's default of reporting it as released.
    const sender = session.open_sender({ target: { address: link.address }, autosettle: true, treat_modified_as_released: false });
    link.sender = sender;
    link.handedOver = 0;
    const current = () => link.sender === sender;
    const closed = (error: PeerError | null) => {
      if (!current()) return;
      link.sender = null;
      endSessionLater(session);
      if (error) this.onRefused(link, error);
      else this.reattach(link);
    };
    sender.on('sendable', () => {
      if (!current()) return;
      if (this.creditLeft(sender, link) <= 0) return;
      // Credit, not the attach, says the broker took the link: one it refuses is attached and detached at once.
      if (link.refusal !== null) {
        link.refusal = null;
        this.options.onAddressRefused?.(link.address, null);
      }
      this.creditCame();
      this.pump(link);
    });
    for (const outcome of ['accepted', 'rejected', 'released', 'modified'] as const) {
      sender.on(outcome, (context: EventContext) => {
        if (context.delivery) this.onOutcome(link, context.delivery, outcome);
      });
    }
    sender.on('sender_error', () => {});
    sender.on('sender_close', () => closed(endpointError(sender)));
    session.on('session_error', () => {});
    session.on('session_close', () => closed(endpointError(session)));
    return sender;
  }

  private onOutcome(link: AddressLink, delivery: Delivery, outcome: Amqp10Outcome): void {
    const entry = link.inFlight.get(delivery);
    if (!entry) return;
    link.inFlight.delete(delivery);
    this.inFlight--;
    if (outcome === 'accepted') {
      this.options.onSettleLatency?.((performance.now() - entry.sentAt) / 1000);
      this.settle(entry, null);
    } else {
      const error = outcomeError(delivery);
      this.options.logger.warn({ address: link.address, outcome, condition: error?.condition, description: error?.description }, `the broker settled an uplink transfer as ${outcome}; the device is not acknowledged`);
      this.settle(entry, new PublishError(OUTCOME_ERRORS[outcome], `the broker settled the transfer to "${link.address}" as ${outcome} (${describePeerError(error)})`));
    }
    this.pumpAll();
  }

  /** The broker closed the link with an error (an unknown address, not allowed): what waits or flies there fails. */
  private onRefused(link: AddressLink, error: PeerError): void {
    const first = link.refusal === null;
    link.refusal = error;
    link.refusedUntil = this.now() + ADDRESS_RETRY_MS;
    if (first) {
      this.options.logger.error({ address: link.address, condition: error.condition, description: error.description }, 'the AMQP 1.0 broker refuses a link to an address');
      this.options.onAddressRefused?.(link.address, error);
    }
    const entries = [...link.inFlight.values(), ...link.waiting.drain()].sort((a, b) => a.sequence - b.sequence);
    this.inFlight -= link.inFlight.size;
    link.inFlight.clear();
    for (const entry of entries) this.failRefused(entry, link);
    this.pumpAll();
  }

  /** The link closed without an error (the broker detached it): its unsettled transfers go out again on a new one. */
  private reattach(link: AddressLink): void {
    this.inFlight -= this.requeueInFlight(link);
    this.pump(link);
  }

  private requeueInFlight(link: AddressLink): number {
    const entries = [...link.inFlight.values()].filter((entry) => !entry.settled).sort((a, b) => a.sequence - b.sequence);
    const count = link.inFlight.size;
    link.inFlight.clear();
    link.waiting.unshiftAll(entries);
    if (entries.length > 0) this.hungry.add(link);
    return count;
  }

  private failRefused(entry: Entry, link: AddressLink): void {
    const why = `the broker refuses address "${link.address}" (${describePeerError(link.refusal)})`;
    this.settle(entry, entry.message.atMostOnce ? new PublishError('BRIDGE_ERR_ADDRESS_REFUSED', why) : new PublishError('BRIDGE_ERR_PUBLISH_REJECTED', why));
  }

  /** Pumps the links that have messages waiting (not every address ever used). */
  private pumpAll(): void {
    for (const link of this.hungry) {
      if (this.inFlight >= this.options.maxUnsettled) return;
      this.pump(link);
      if (link.waiting.length === 0) this.hungry.delete(link);
    }
  }

  private watchCredit(): void {
    if (this.stallTimer || this.stalled) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (![...this.hungry].some((link) => link.waiting.length > 0 && link.sender !== null && this.creditLeft(link.sender, link) <= 0)) return;
      this.stalled = true;
      this.options.logger.warn('the AMQP 1.0 broker grants no link credit: publishing waits');
      this.options.onCreditStalled?.(true);
    }, CREDIT_STALL_MS);
    this.stallTimer.unref();
  }

  private creditCame(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    if (!this.stalled) return;
    this.stalled = false;
    this.options.logger.info('the AMQP 1.0 broker grants link credit again');
    this.options.onCreditStalled?.(false);
  }

  private settle(entry: Entry, error: PublishError | null): void {
    if (entry.settled) return;
    entry.settled = true;
    this.messages--;
    this.bytes -= entry.message.content.length;
    this.deadlines.dropSettled();
    entry.done(error);
    if (this.messages === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const waiter of waiters) waiter();
    }
  }

  private scheduleSweep(): void {
    if (this.timer) clearTimeout(this.timer);
    const first = this.deadlines.first();
    if (!first) {
      this.timer = null;
      this.timerDeadline = Infinity;
      return;
    }
    this.timerDeadline = first.deadline;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, first.deadline - this.now()));
    this.timer.unref();
  }

  private sweep(): void {
    const now = this.now();
    for (let first = this.deadlines.first(); first && first.deadline <= now; first = this.deadlines.first()) {
      // A transfer in flight keeps its place in the window until the broker settles it (or the connection goes).
      this.settle(first, new PublishError('BRIDGE_ERR_PUBLISH_TIMEOUT', `the broker did not settle the publish within ${this.options.publishTimeoutMs} ms`));
    }
    this.scheduleSweep();
  }
}

const OUTCOME_ERRORS = {
  rejected: 'BRIDGE_ERR_PUBLISH_REJECTED',
  released: 'BRIDGE_ERR_PUBLISH_RELEASED',
  modified: 'BRIDGE_ERR_PUBLISH_MODIFIED',
} as const;
