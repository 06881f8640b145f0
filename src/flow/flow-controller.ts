import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { BrokerState } from '../ports.js';
import { Fifo } from '../util/fifo.js';

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

/** One client's waiting publishes in arrival order, and how many of them are QoS 0. */
class ClientQueue extends Fifo<Admission> {
  qos0 = 0;
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
  private readonly inflight = new Map<string, number>();
  /** Waiting publishes per client, in arrival order. */
  private readonly queues = new Map<string, ClientQueue>();
  /** Clients with waiting publishes that may go when there is room, in the order they started waiting. */
  private readonly turns = new Fifo<string>();
  private readonly inTurn = new Set<string>();
  private waitingCount = 0;
  /** Waiting QoS 0 publishes: when none wait, leaving `open` has nothing to drop. */
  private waitingQos0 = 0;
  private disconnectedSince: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private pumping = false;
  private readonly pumpLater = () => this.pump();
  private readonly now: () => number;

  constructor(private readonly options: FlowOptions) {
    super();
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
    const queue = this.queues.get(request.clientId);
    if (!queue && this.turns.length === 0 && this.hasRoom(request) && this.underLimit(request.clientId)) {
      this.take(request);
      return;
    }
    if (request.qos === 0 && this.options.qos0Overflow === 'drop' && !this.hasRoom(request)) {
      request.refused('qos0_overflow'); // QoS 0 waits only for its own client's turn, never for the flow
      return;
    }
    if (queue) {
      this.park(queue, request);
    } else {
      const created = new ClientQueue();
      this.park(created, request);
      this.queues.set(request.clientId, created);
      this.giveTurn(request.clientId);
    }
    if (!this.timer) this.scheduleSweep();
    this.pump();
  }

  /** Shutdown: nothing more is admitted; waiting publishes are refused. */
  close(): void {
    this.closed = true;
    for (const queue of this.queues.values()) {
      while (queue.length > 0) this.unpark(queue).refused('shutdown');
    }
    this.queues.clear();
    this.turns.drain();
    this.inTurn.clear();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private park(queue: ClientQueue, request: Admission): void {
    queue.push(request);
    this.waitingCount++;
    if (request.qos === 0) {
      queue.qos0++;
      this.waitingQos0++;
    }
  }

  /** Takes the head of a non-empty client queue out of the waiting publishes. */
  private unpark(queue: ClientQueue): Admission {
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

  private underLimit(clientId: string): boolean {
    return (this.inflight.get(clientId) ?? 0) < this.options.maxInflightPerClient;
  }

  private giveTurn(clientId: string): void {
    if (this.inTurn.has(clientId)) return;
    this.inTurn.add(clientId);
    this.turns.push(clientId);
  }

  private take(request: Admission): void {
    this.messages++;
    this.bytes += request.bytes;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    if (this.messages > this.peakMessages) this.peakMessages = this.messages;
    this.inflight.set(request.clientId, (this.inflight.get(request.clientId) ?? 0) + 1);
    this.update();
    let released = false;
    request.admitted(() => {
      if (released) return;
      released = true;
      this.messages--;
      this.bytes -= request.bytes;
      const left = (this.inflight.get(request.clientId) ?? 1) - 1;
      if (left === 0) this.inflight.delete(request.clientId);
      else this.inflight.set(request.clientId, left);
      if (this.queues.has(request.clientId)) this.giveTurn(request.clientId);
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
        const clientId = this.turns.peek();
        if (clientId === undefined) break;
        const queue = this.queues.get(clientId);
        const head = queue?.peek();
        if (!queue || !head) {
          this.turns.shift();
          this.inTurn.delete(clientId);
          this.queues.delete(clientId);
          continue;
        }
        cutoff ??= this.now() - this.options.publishTimeoutMs;
        if (head.receivedAt <= cutoff) {
          this.unpark(queue);
          head.refused('timeout');
          continue;
        }
        if (!this.underLimit(clientId)) {
          this.turns.shift();
          this.inTurn.delete(clientId);
          continue;
        }
        if (!this.hasRoom(head)) break;
        this.unpark(queue);
        this.turns.shift();
        this.inTurn.delete(clientId);
        if (queue.length === 0) this.queues.delete(clientId);
        else this.giveTurn(clientId); // to the back: the next client goes first
        this.take(head);
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
    for (const [clientId, queue] of this.queues) {
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
      if (kept.length === 0) this.queues.delete(clientId);
      else queue.unshiftAll(kept);
    }
  }

  private scheduleSweep(): void {
    if (this.waitingCount === 0) {
      this.timer = null;
      return;
    }
    let oldest = Number.POSITIVE_INFINITY;
    for (const queue of this.queues.values()) oldest = Math.min(oldest, queue.peek()?.receivedAt ?? oldest);
    const delay = Number.isFinite(oldest) ? Math.max(0, oldest + this.options.publishTimeoutMs - this.now()) : 0;
    this.timer = setTimeout(() => this.sweep(), delay);
    this.timer.unref();
  }

  /** Refuses publishes that waited longer than publishTimeoutMs (each queue is in arrival order). */
  private sweep(): void {
    const cutoff = this.now() - this.options.publishTimeoutMs;
    for (const [clientId, queue] of this.queues) {
      for (let head = queue.peek(); head && head.receivedAt <= cutoff; head = queue.peek()) {
        this.unpark(queue);
        head.refused('timeout');
      }
      if (queue.length === 0) this.queues.delete(clientId);
    }
    this.scheduleSweep();
  }
}
