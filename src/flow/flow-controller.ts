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
export const FLOW_STATES: readonly FlowState[] = ['open', 'throttled', 'blocked', 'disconnected'];

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

/** One publish asking to go on to RabbitMQ. */
export interface AdmissionRequest {
  readonly clientId: string;
  readonly bytes: number;
  readonly qos: 0 | 1 | 2;
  /** When the device's publish arrived (ms since the epoch). */
  readonly receivedAt: number;
}

/** Given to an admitted publish: call it once RabbitMQ settled it (confirm, nack or timeout). */
export type Release = () => void;

interface Parked {
  readonly request: AdmissionRequest;
  readonly admit: (release: Release) => void;
  readonly refuse: (reason: RefusalReason) => void;
  settled: boolean;
}

/**
 * The one flow controller between the MQTT and AMQP sides. Every device publish asks it for
 * admission before it is handed to the publisher. In `open` state, and while the client is
 * under its in-flight limit, it goes on at once; otherwise QoS 1/2 (and QoS 0 with
 * `qos0Overflow: block`) wait here, in arrival order, and QoS 0 is dropped (it never waits). A waiting publish
 * holds aedes' callback, and aedes reads a client's socket again only when every publish of the
 * last read has called back: so waiting stops reading from exactly the clients that publish,
 * and TCP pushes back on them.
 */
export class FlowController extends EventEmitter<{ state: [FlowState, FlowState] }> {
  private currentState: FlowState = 'disconnected';
  private broker: BrokerState = 'connecting';
  private blocked = false;
  private messages = 0;
  private bytes = 0;
  private peakBytes = 0;
  private peakMessages = 0;
  private readonly perClient = new Map<string, number>();
  private readonly parked = new Fifo<Parked>();
  private parkedCount = 0;
  private disconnectedSince: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
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
    return this.parkedCount;
  }

  /** How long RabbitMQ has been unreachable, 0 while connected. */
  disconnectedForMs(): number {
    return this.currentState === 'disconnected' ? this.now() - this.disconnectedSince : 0;
  }

  setBrokerState(state: BrokerState): void {
    this.broker = state;
    this.update();
  }

  setBlocked(blocked: boolean): void {
    this.blocked = blocked;
    this.update();
  }

  admit(request: AdmissionRequest, admit: (release: Release) => void, refuse: (reason: RefusalReason) => void): void {
    if (this.closed) {
      refuse('shutdown');
      return;
    }
    const dropsQos0 = request.qos === 0 && this.options.qos0Overflow === 'drop';
    // QoS 0 under `drop` never waits, so it may pass publishes that wait (of other QoS).
    if ((this.parkedCount === 0 || dropsQos0) && this.canAdmit(request)) {
      this.take(request, admit);
      return;
    }
    if (dropsQos0) {
      refuse('qos0_overflow');
      return;
    }
    this.parked.push({ request, admit, refuse, settled: false });
    this.parkedCount++;
    if (!this.timer) this.scheduleSweep();
    // Open, but others wait (a client at its in-flight limit): this one may still go, in turn.
    if (this.currentState === 'open') this.drain();
  }

  /** Shutdown: nothing more is admitted; waiting publishes are refused. */
  close(): void {
    this.closed = true;
    for (let entry = this.parked.shift(); entry; entry = this.parked.shift()) this.refuseParked(entry, 'shutdown');
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private canAdmit(request: AdmissionRequest): boolean {
    if (this.currentState !== 'open') return false;
    if ((this.perClient.get(request.clientId) ?? 0) >= this.options.maxInflightPerClient) return false;
    // A single message larger than the whole byte budget still goes, alone.
    return this.messages === 0 || this.bytes + request.bytes <= this.options.maxPendingBytes;
  }

  private take(request: AdmissionRequest, admit: (release: Release) => void): void {
    this.messages++;
    this.bytes += request.bytes;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    if (this.messages > this.peakMessages) this.peakMessages = this.messages;
    this.perClient.set(request.clientId, (this.perClient.get(request.clientId) ?? 0) + 1);
    this.update();
    let released = false;
    admit(() => {
      if (released) return;
      released = true;
      this.messages--;
      this.bytes -= request.bytes;
      const left = (this.perClient.get(request.clientId) ?? 1) - 1;
      if (left === 0) this.perClient.delete(request.clientId);
      else this.perClient.set(request.clientId, left);
      this.update();
      this.drain();
    });
  }

  /** Admits waiting publishes in arrival order; a client's later publishes never overtake its earlier ones. */
  private drain(): void {
    if (this.parkedCount === 0 || this.currentState !== 'open') return;
    const skipped: Parked[] = [];
    const held = new Set<string>();
    while (this.currentState === 'open') {
      const entry = this.parked.shift();
      if (!entry) break;
      if (entry.settled) continue;
      if (held.has(entry.request.clientId) || !this.canAdmit(entry.request)) {
        held.add(entry.request.clientId);
        skipped.push(entry);
        if (this.currentState !== 'open' || this.bytes >= this.options.maxPendingBytes) break;
        continue;
      }
      entry.settled = true;
      this.parkedCount--;
      this.take(entry.request, entry.admit);
    }
    this.parked.unshiftAll(skipped);
  }

  private update(): void {
    const next: FlowState =
      this.broker !== 'connected'
        ? 'disconnected'
        : this.blocked
          ? 'blocked'
          : this.messages >= this.options.maxPendingMessages || this.bytes >= this.options.maxPendingBytes
            ? 'throttled'
            : 'open';
    if (next === this.currentState) return;
    const previous = this.currentState;
    this.currentState = next;
    if (next === 'disconnected') this.disconnectedSince = this.now();
    const level = next === 'open' || next === 'throttled' ? 'debug' : 'warn';
    this.options.logger[level]({ from: previous, to: next, pendingMessages: this.messages, pendingBytes: this.bytes, waiting: this.parkedCount }, `flow ${next}`);
    this.emit('state', next, previous);
    if (next === 'open') queueMicrotask(() => this.drain());
  }

  private refuseParked(entry: Parked, reason: RefusalReason): void {
    if (entry.settled) return;
    entry.settled = true;
    this.parkedCount--;
    entry.refuse(reason);
  }

  private scheduleSweep(): void {
    let head = this.parked.peek();
    while (head?.settled) {
      this.parked.shift();
      head = this.parked.peek();
    }
    if (!head) {
      this.timer = null;
      return;
    }
    const delay = Math.max(0, head.request.receivedAt + this.options.publishTimeoutMs - this.now());
    this.timer = setTimeout(() => this.sweep(), delay);
    this.timer.unref();
  }

  private sweep(): void {
    const cutoff = this.now() - this.options.publishTimeoutMs;
    // Arrival order is deadline order, but skipped entries went back to the front: scan them all.
    const keep: Parked[] = [];
    for (let entry = this.parked.shift(); entry; entry = this.parked.shift()) {
      if (entry.settled) continue;
      if (entry.request.receivedAt <= cutoff) this.refuseParked(entry, 'timeout');
      else keep.push(entry);
    }
    this.parked.unshiftAll(keep);
    this.scheduleSweep();
  }
}
