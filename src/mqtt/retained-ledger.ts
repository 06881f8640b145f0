import { BridgeError } from '../errors.js';
import type { RetainedLimitName } from './limits.js';

/** `mqtt.maxRetained*`: how many retained messages, and how many bytes of them, are kept. */
export interface RetainedLimits {
  readonly maxRetainedMessages: number;
  readonly maxRetainedBytes: number;
  readonly maxRetainedMessagesPerUser: number;
  readonly maxRetainedBytesPerUser: number;
}

/**
 * Whom a retained message counts against besides the totals: a user by name, or the anonymous
 * clients, all of them as one user (`username: null`). `null` counts in the totals only: a
 * downlink message (no MQTT user published it) or one restored from a version 1 session file
 * (which did not record its publisher).
 */
export type RetainedOwner = { readonly username: string | null } | null;

/** The room held for one retained publish from its check until the store takes it (or it fails). */
export interface RetainedReservation {
  readonly topic: string;
  readonly owner: RetainedOwner;
}

export type RetainedAdmission = { readonly ok: true; readonly reservation: RetainedReservation } | { readonly ok: false; readonly limit: RetainedLimitName };

export interface RetainedUsage {
  readonly messages: number;
  /** Topic and payload bytes. */
  readonly bytes: number;
}

/** A retained message itself. */
export interface RetainedMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos?: number;
}

/** One retained message as the ledger counts it. */
export interface RetainedEntry {
  readonly topic: string;
  readonly owner: RetainedOwner;
  readonly payloadBytes: number;
  /**
   * The message, given to `stored`: a ledger that keeps the messages beside their counts (Redis)
   * writes both at once; the memory ledger counts only (aedes' in-memory store keeps the message).
   */
  readonly message?: RetainedMessage;
}

/**
 * The retained messages the store holds, counted in total and per user, with room reserved for
 * the publishes checked and not yet stored: publishes checked at the same time cannot together
 * pass a limit. The counts follow what the store really holds (`stored`), so a publish that
 * fails after its check changes nothing once released. The ledger of a store shared by several
 * bridge instances (RedisRetainedLedger, src/mqtt/redis/retained-ledger.ts) keeps these counts
 * there and checks them atomically there, hence the promises; `reserve` answers at once when it
 * can, so that a retained publish is not overtaken by the publishes its client sent after it.
 */
export interface RetainedLedger {
  /** Holds room for a retained publish with a payload, or names the limit it would break. */
  reserve(entry: RetainedEntry): RetainedAdmission | Promise<RetainedAdmission>;
  /** The store now holds this on the topic (an empty payload: nothing); ends the reservation, if one is given. */
  stored(entry: RetainedEntry, reservation?: RetainedReservation): Promise<void>;
  /**
   * Gives back the room of a publish that will not be stored; nothing for one already ended.
   * Never rejects: room it cannot give back now is given back later (a Redis ledger's
   * reservations expire), and callers do not wait for it.
   */
  release(reservation: RetainedReservation): Promise<void>;
  /** What is stored now (reservations not included); a shared ledger answers with what it last saw. */
  usage(): RetainedUsage;
}

/** The bytes a retained message counts: its topic (UTF-8) and its payload. */
export function retainedBytes(entry: RetainedEntry): number {
  return Buffer.byteLength(entry.topic, 'utf8') + entry.payloadBytes;
}

interface Usage {
  messages: number;
  bytes: number;
}

/** A user's key in the per-user counts: the username, null for the anonymous clients. */
type UserKey = string | null;

class MemoryReservation implements RetainedReservation {
  open = true;
  constructor(
    readonly topic: string,
    readonly owner: RetainedOwner,
    /** What it adds to the totals and to its owner's counts if stored. */
    readonly total: Usage,
    readonly user: Usage,
  ) {}
}

/** The ledger of one process, beside aedes' in-memory persistence. */
export class MemoryRetainedLedger implements RetainedLedger {
  private readonly entries = new Map<string, { owner: RetainedOwner; bytes: number }>();
  private readonly total: Usage = { messages: 0, bytes: 0 };
  private readonly reservedTotal: Usage = { messages: 0, bytes: 0 };
  private readonly byUser = new Map<UserKey, Usage>();
  private readonly reservedByUser = new Map<UserKey, Usage>();

  constructor(private readonly limits: RetainedLimits) {}

  reserve(entry: RetainedEntry): RetainedAdmission {
    const bytes = retainedBytes(entry);
    const existing = this.entries.get(entry.topic);
    // Replacing a message counts the difference; a smaller one takes nothing. Several publishes
    // reserving on one topic each count against what is stored, which errs towards refusing.
    const total = { messages: existing ? 0 : 1, bytes: Math.max(0, bytes - (existing?.bytes ?? 0)) };
    const sameOwner = existing !== undefined && existing.owner !== null && entry.owner !== null && existing.owner.username === entry.owner.username;
    const user = sameOwner ? { messages: 0, bytes: Math.max(0, bytes - existing.bytes) } : { messages: 1, bytes };
    if (entry.owner !== null) {
      const key = entry.owner.username;
      const held = this.byUser.get(key);
      const reserved = this.reservedByUser.get(key);
      if (exceeds(user.messages, held?.messages, reserved?.messages, this.limits.maxRetainedMessagesPerUser)) return refused('retained_messages_per_user');
      if (exceeds(user.bytes, held?.bytes, reserved?.bytes, this.limits.maxRetainedBytesPerUser)) return refused('retained_bytes_per_user');
    }
    if (exceeds(total.messages, this.total.messages, this.reservedTotal.messages, this.limits.maxRetainedMessages)) return refused('retained_messages');
    if (exceeds(total.bytes, this.total.bytes, this.reservedTotal.bytes, this.limits.maxRetainedBytes)) return refused('retained_bytes');
    add(this.reservedTotal, total, 1);
    if (entry.owner !== null) addTo(this.reservedByUser, entry.owner.username, user, 1);
    return { ok: true, reservation: new MemoryReservation(entry.topic, entry.owner, total, user) };
  }

  async stored(entry: RetainedEntry, reservation?: RetainedReservation): Promise<void> {
    if (reservation) this.end(reservation);
    const existing = this.entries.get(entry.topic);
    if (existing) {
      add(this.total, { messages: 1, bytes: existing.bytes }, -1);
      if (existing.owner !== null) addTo(this.byUser, existing.owner.username, { messages: 1, bytes: existing.bytes }, -1);
      this.entries.delete(entry.topic);
    }
    if (entry.payloadBytes === 0) return; // an empty retained payload clears the topic [MQTT-3.3.1-10]
    const bytes = retainedBytes(entry);
    this.entries.set(entry.topic, { owner: entry.owner, bytes });
    add(this.total, { messages: 1, bytes }, 1);
    if (entry.owner !== null) addTo(this.byUser, entry.owner.username, { messages: 1, bytes }, 1);
  }

  async release(reservation: RetainedReservation): Promise<void> {
    this.end(reservation);
  }

  /** Who published the message retained on a topic; undefined when none is (for the session file). */
  ownerOf(topic: string): RetainedOwner | undefined {
    return this.entries.get(topic)?.owner;
  }

  usage(): RetainedUsage {
    return { messages: this.total.messages, bytes: this.total.bytes };
  }

  /** Room reserved now, in total and for one user (for tests and diagnostics). */
  reserved(username?: string | null): RetainedUsage {
    const usage = username === undefined ? this.reservedTotal : this.reservedByUser.get(username);
    return { messages: usage?.messages ?? 0, bytes: usage?.bytes ?? 0 };
  }

  /** What one user has stored now. */
  usageOf(username: string | null): RetainedUsage {
    const usage = this.byUser.get(username);
    return { messages: usage?.messages ?? 0, bytes: usage?.bytes ?? 0 };
  }

  private end(reservation: RetainedReservation): void {
    if (!(reservation instanceof MemoryReservation)) throw new BridgeError('BRIDGE_ERR_INTERNAL', 'not a reservation of this ledger');
    if (!reservation.open) return;
    reservation.open = false;
    add(this.reservedTotal, reservation.total, -1);
    if (reservation.owner !== null) addTo(this.reservedByUser, reservation.owner.username, reservation.user, -1);
  }
}

function refused(limit: RetainedLimitName): RetainedAdmission {
  return { ok: false, limit };
}

/** Whether adding `charge` to what is held and reserved passes `max`; adding nothing never does. */
function exceeds(charge: number, held = 0, reserved = 0, max: number): boolean {
  return charge > 0 && held + reserved + charge > max;
}

function add(usage: Usage, change: Usage, sign: 1 | -1): void {
  usage.messages += sign * change.messages;
  usage.bytes += sign * change.bytes;
}

/** Adds to one user's counts; a user whose counts fall to nothing is forgotten (the map stays as small as the users holding something). */
function addTo(map: Map<UserKey, Usage>, key: UserKey, change: Usage, sign: 1 | -1): void {
  let usage = map.get(key);
  if (!usage) {
    usage = { messages: 0, bytes: 0 };
    map.set(key, usage);
  }
  add(usage, change, sign);
  if (usage.messages === 0 && usage.bytes === 0) map.delete(key);
}
