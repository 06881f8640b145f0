import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { BrokerState } from '../ports.js';
import { Fifo } from '../util/fifo.js';
import { refillPoint } from '../util/refill-point.js';

/**
 * - `open`: publishes go straight on to RabbitMQ.
 * - `throttled`: the pending budget (messages or bytes accepted and not yet confirmed) is full.
 * - `blocked`: RabbitMQ sent connection.blocked (a resource alarm).
 * - `disconnected`: RabbitMQ is not reachable.
 */
export type FlowState = 'open' | 'throttled' | 'blocked' | 'disconnected';

export type RefusalReason = 'qos0_overflow' | 'timeout' | 'shutdown';

export interface FlowOptions {
  maxPendingMessages: number;
  maxPendingBytes: number;
  maxInflightPerClient: number;
  qos0Overflow: 'drop' | 'block';
  /** A publish that waits (here and then for the confirm) longer than this fails. */
  publishTimeoutMs: number;
  logger: Logger;
  now?: () => number;
}

/** Given to an admitted publish: call it once RabbitMQ settled it (confirm, nack or timeout). */
export type Release = () => void;

/**
 * One publish asking to go on to RabbitMQ, and what to do with the answer: exactly one of
 * `admitted` and `refused` is called, once. (One object per publish, kept as is while it waits.)
 */
export interface Admission {
  readonly clientId: string;
  readonly bytes: number;
  readonly qos: 0 | 1 | 2;
  /** When the device's publish arrived (ms since the epoch). */
  readonly receivedAt: number;
  admitted(release: Release): void;
  refused(reason: RefusalReason): void;
}

/**
 * One client's flow: its waiting publishes in arrival order (how many of them QoS 0), how many
 * of its publishes are admitted and not yet released, and whether it holds a turn. Kept while
 * either count is above 0, so that one lookup per publish finds all of it.
 */
class ClientFlow extends Fifo<Admission> {
  qos0 = 0;
  inflight = 0;
  inTurn = false;

  constructor(readonly clientId: string) {
    super();
  }
}

/**
 * The one flow controller between the MQTT and AMQP sides. Every device publish asks it for
 * admission before it is handed to the publisher. In `open` state, within the budget and while
 * the client is under its in-flight limit, it goes on at once. Otherwise it waits in its client's
 * queue (each client's publishes stay in order; waiting clients are served in turn), except QoS 0
 * under `qos0Overflow: drop`, which is dropped when the flow is not `open`. A waiting publish
 * holds aedes' callback, and aedes reads a client's socket again only when every publish of the
 * last read has called back: so waiting stops reading from exactly the clients that publish, and
 * TCP pushes back on them.
 */
export class FlowController extends EventEmitter<{ state: [FlowState, FlowState] }> {
  private currentState: FlowState = 'disconnected';
  private broker: BrokerState = 'connecting';
  private blocked = false;
  private messages = 0;
  private bytes = 0;
  private peakBytes = 0;
  private peakMessages = 0;
  /** Clients with publishes waiting or in flight. */
  private readonly clients = new Map<string, ClientFlow>();
  /** Clients with waiting publishes that may go when there is room, in the order they started waiting. */
  private readonly turns = new Fifo<ClientFlow>();
  private waitingCount = 0;
  /** Waiting QoS 0 publishes: when none wait, leaving `open` has nothing to drop. */
  private waitingQos0 = 0;
  private disconnectedSince: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private pumping = false;
  private readonly pumpLater = () => this.pump();
  private readonly now: () => number;
  /** A client that reached its in-flight limit takes a turn again only once this few are in flight. */
  private readonly resumeAtInflight: number;

  constructor(private readonly options: FlowOptions) {
    super();
    this.resumeAtInflight = refillPoint(options.maxInflightPerClient);
    this.now = options.now ?? Date.now;
    this.disconnectedSince = this.now();
  }

  get state(): FlowState {
    return this.currentState;
  }

  get pendingMessages(): number {
    return this.messages;
  }

  get pendingBytes(): number {
    return this.bytes;
  }

  /** The most bytes ever pending at once (for tests and the overload benchmark). */
  get peakPendingBytes(): number {
    return this.peakBytes;
  }

  get peakPendingMessages(): number {
    return this.peakMessages;
  }

  /** Clients with publishes waiting or in flight: the controller forgets the others (for tests). */
  get clientsTracked(): number {
    return this.clients.size;
  }

  /** Publishes waiting for admission. */
  get waiting(): number {
    return this.waitingCount;
  }

  /** How long RabbitMQ has been unreachable, 0 while connected. */
  disconnectedForMs(): number {
    return this.currentState === 'disconnected' ? this.now() - this.disconnectedSince : 0;
  }

  setBrokerState(state: BrokerState): void {
    this.broker = state;
    if (this.update()) queueMicrotask(this.pumpLater);
  }

  setBlocked(blocked: boolean): void {
    this.blocked = blocked;
    if (this.update()) queueMicrotask(this.pumpLater);
  }

  admit(request: Admission): void {
    if (this.closed) {
      request.refused('shutdown');
      return;
    }
    let client = this.clients.get(request.clientId);
    const waitsFirst = client !== undefined && (client.length > 0 || client.inflight >= this.options.maxInflightPerClient);
    if (!waitsFirst && this.turns.length === 0 && this.hasRoom(request)) {
      if (!client) {
        client = new ClientFlow(request.clientId);
        this.clients.set(request.clientId, client);
      }
      this.take(client, request);
      return;
    }
    if (request.qos === 0 && this.options.qos0Overflow === 'drop' && !this.hasRoom(request)) {
      request.refused('qos0_overflow'); // QoS 0 waits only for its own client's turn, never for the flow
      return;
    }
    if (!client) {
      client = new ClientFlow(request.clientId);
      this.clients.set(request.clientId, client);
    }
    this.park(client, request);
    if (client.length === 1) this.giveTurn(client);
    if (!this.timer) this.scheduleSweep();
    this.pump();
  }

  /** Shutdown: nothing more is admitted; waiting publishes are refused. */
  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) {
      while (client.length > 0) this.unpark(client).refused('shutdown');
      client.inTurn = false;
      this.forgetIfIdle(client);
    }
    this.turns.drain();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private park(queue: ClientFlow, request: Admission): void {
    queue.push(request);
    this.waitingCount++;
    if (request.qos === 0) {
      queue.qos0++;
      this.waitingQos0++;
    }
  }

  /** Takes the head of a non-empty client queue out of the waiting publishes. */
  private unpark(queue: ClientFlow): Admission {
    const request = queue.shift()!;
    this.waitingCount--;
    if (request.qos === 0) {
      queue.qos0--;
      this.waitingQos0--;
    }
    return request;
  }

  /** Open, and the budget has room for this publish (a single one larger than the whole budget still goes, alone). */
  private hasRoom(request: Admission): boolean {
    if (this.currentState !== 'open') return false;
    return this.messages === 0 || this.bytes + request.bytes <= this.options.maxPendingBytes;
  }

  private giveTurn(client: ClientFlow): void {
    if (client.inTurn) return;
    client.inTurn = true;
    this.turns.push(client);
  }

  /** Drops a client with nothing waiting and nothing in flight (unless a newer entry took its place). */
  private forgetIfIdle(client: ClientFlow): void {
    if (client.length > 0 || client.inflight > 0) return;
    if (this.clients.get(client.clientId) === client) this.clients.delete(client.clientId);
  }

  private take(client: ClientFlow, request: Admission): void {
    this.messages++;
    this.bytes += request.bytes;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    if (this.messages > this.peakMessages) this.peakMessages = this.messages;
    client.inflight++;
    this.update();
    let released = false;
    request.admitted(() => {
      if (released) return;
      released = true;
      this.messages--;
      this.bytes -= request.bytes;
      client.inflight--;
      if (client.length === 0) this.forgetIfIdle(client);
      else if (client.inflight <= this.resumeAtInflight) this.giveTurn(client);
      this.update(); // when this opens the flow, the pump below is the one that drains it
      this.pump();
    });
  }

  /**
   * Admits waiting publishes while the flow is open and the budget has room: each client in
   * turn, one publish per turn, so one busy client cannot starve the others. A client at its
   * in-flight limit leaves the turns until one of its publishes is released. A publish already
   * older than publishTimeoutMs is refused instead: it would be written and then time out.
   */
  private pump(): void {
    if (this.pumping) return; // admitting runs callbacks that may come back here
    this.pumping = true;
    let cutoff: number | undefined;
    try {
      while (this.currentState === 'open') {
        const client = this.turns.peek();
        if (client === undefined) break;
        const head = client.peek();
        if (!head) {
          this.turns.shift();
          client.inTurn = false;
          this.forgetIfIdle(client);
          continue;
        }
        cutoff ??= this.now() - this.options.publishTimeoutMs;
        if (head.receivedAt <= cutoff) {
          this.unpark(client);
          head.refused('timeout');
          continue;
        }
        if (client.inflight >= this.options.maxInflightPerClient) {
          this.turns.shift();
          client.inTurn = false;
          continue;
        }
        if (!this.hasRoom(head)) break;
        this.unpark(client);
        this.turns.shift();
        client.inTurn = false;
        if (client.length > 0) this.giveTurn(client); // to the back: the next client goes first
        this.take(client, head);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Recomputes the state; true when it has just become `open` (the caller then drains the waiting publishes). */
  private update(): boolean {
    const next: FlowState =
      this.broker !== 'connected'
        ? 'disconnected'
        : this.blocked
          ? 'blocked'
          : this.messages >= this.options.maxPendingMessages || this.bytes >= this.options.maxPendingBytes
            ? 'throttled'
            : 'open';
    if (next === this.currentState) return false;
    const previous = this.currentState;
    this.currentState = next;
    if (next === 'disconnected') this.disconnectedSince = this.now();
    const level = next === 'open' || next === 'throttled' ? 'debug' : 'warn';
    this.options.logger[level]({ from: previous, to: next, pendingMessages: this.messages, pendingBytes: this.bytes, waiting: this.waitingCount }, `flow ${next}`);
    this.emit('state', next, previous);
    if (next === 'open') return true;
    if (this.options.qos0Overflow === 'drop') this.dropWaitingQos0();
    return false;
  }

  /**
   * Not open any more: QoS 0 that waited for its client's turn is dropped now, as new QoS 0 is.
   * Under overload the state flips at every release, so only queues that hold QoS 0 are touched.
   */
  private dropWaitingQos0(): void {
    if (this.waitingQos0 === 0) return;
    for (const queue of this.clients.values()) {
      if (queue.qos0 === 0) continue;
      const kept: Admission[] = [];
      for (let request = queue.shift(); request; request = queue.shift()) {
        if (request.qos !== 0) {
          kept.push(request);
          continue;
        }
        queue.qos0--;
        this.waitingQos0--;
        this.waitingCount--;
        request.refused('qos0_overflow');
      }
      if (kept.length === 0) this.forgetIfIdle(queue);
      else queue.unshiftAll(kept);
    }
  }

  private scheduleSweep(): void {
    if (this.waitingCount === 0) {
      this.timer = null;
      return;
    }
    let oldest = Number.POSITIVE_INFINITY;
    for (const queue of this.clients.values()) oldest = Math.min(oldest, queue.peek()?.receivedAt ?? oldest);
    const delay = Number.isFinite(oldest) ? Math.max(0, oldest + this.options.publishTimeoutMs - this.now()) : 0;
    this.timer = setTimeout(() => this.sweep(), delay);
    this.timer.unref();
  }

  /** Refuses publishes that waited longer than publishTimeoutMs (each queue is in arrival order). */
  private sweep(): void {
    const cutoff = this.now() - this.options.publishTimeoutMs;
    for (const queue of this.clients.values()) {
      for (let head = queue.peek(); head && head.receivedAt <= cutoff; head = queue.peek()) {
        this.unpark(queue);
        head.refused('timeout');
      }
      this.forgetIfIdle(queue);
    }
    this.scheduleSweep();
  }
}
