import type { RetainedLimitName } from './limits.js';
import type { RetainedAdmission, RetainedLedger, RetainedOwner, RetainedReservation, RetainedUsage } from './retained-ledger.js';

/** A publish as the quota sees it: aedes' packets and the downlink's requests alike. */
export interface RetainedPublish {
  readonly topic: string;
  readonly payload: Buffer;
  readonly retain?: boolean;
  readonly qos?: number;
}

/** The connection a publish arrived on, as far as the quota needs it. */
export interface PublishConnection {
  readonly closed: boolean;
}

/** What the session store tells the retained-message accounting. */
export interface RetainedAccounting {
  /**
   * aedes stored a retained message (or, empty payload, cleared the topic); `owner` is given for
   * a message restored from a session file, else it is the owner of the publish's reservation.
   */
  stored(packet: RetainedPublish, owner?: RetainedOwner): Promise<void>;
  /** A publish that was admitted will not be stored (aedes took a QoS 2 PUBLISH for a resend, or refused to keep it). */
  notStored(packet: { readonly payload?: unknown }): void;
}

/**
 * Retained publishes against `mqtt.maxRetained*`. A publish is checked (`admit`) before it goes
 * anywhere, and its room is then reserved in the ledger; aedes stores it later (for QoS 1 after
 * the AMQP confirm and the PUBACK), and that store commits the reservation. The two are linked by
 * the payload Buffer, which aedes carries from the PUBLISH it parsed into the packet it stores.
 *
 * A publish that ends without being stored gives its room back: its caller says so when it
 * fails (`abandon`), the session store when aedes answers a resent QoS 2 PUBLISH from its store
 * (`notStored`), and otherwise the connection's close does: every other way aedes drops an
 * admitted device publish (a PUBACK it cannot write, a QoS 2 store refused) closes the connection.
 */
export class RetainedQuota implements RetainedAccounting {
  private readonly byPayload = new WeakMap<Buffer, RetainedReservation>();
  /** Publishes stored before their acknowledgement, which aedes' own store later passes over. */
  private readonly storedEarly = new WeakSet<Buffer>();
  /** The open reservations of each connection, and the set each reservation is in. */
  private readonly byConnection = new WeakMap<PublishConnection, Set<RetainedReservation>>();
  private readonly connectionSet = new WeakMap<RetainedReservation, Set<RetainedReservation>>();

  /**
   * `storeBeforeAck`: the store can fail (Redis): a QoS 1 retained publish is then stored before
   * its PUBACK (`storeBeforeAck()`), since aedes writes the PUBACK before it stores a retained
   * message, and one it could not store would have been acknowledged.
   */
  constructor(
    private readonly ledger: RetainedLedger,
    readonly options: { readonly storeBeforeAck?: boolean } = {},
  ) {}

  /**
   * Checks a publish before it goes anywhere: null when it may go on (a retained one with a
   * payload then holds its room), or the limit it would break. Clearing a topic (empty payload)
   * is always allowed. `connection`: the open connection the publish arrived on, whose close gives
   * back the room if the publish is not stored by then; null for wills and downlink publishes,
   * whose callers abandon them when they fail.
   */
  admit(publish: RetainedPublish, owner: RetainedOwner, connection: PublishConnection | null): RetainedLimitName | null | Promise<RetainedLimitName | null> {
    if (!publish.retain || publish.payload.length === 0) return null;
    const admission = this.ledger.reserve({ topic: publish.topic, owner, payloadBytes: publish.payload.length });
    return admission instanceof Promise ? admission.then((answer) => this.admitted(answer, publish, connection)) : this.admitted(admission, publish, connection);
  }

  private admitted(admission: RetainedAdmission, publish: RetainedPublish, connection: PublishConnection | null): RetainedLimitName | null {
    if (!admission.ok) return admission.limit;
    const reservation = admission.reservation;
    this.byPayload.set(publish.payload, reservation);
    if (connection?.closed) {
      // Closed while the room was reserved: aedes acknowledges nothing more on it, yet may still
      // store the publish (QoS 0 and 2 go on); the link above keeps its owner for that store.
      this.giveBack(reservation);
    } else if (connection) {
      let open = this.byConnection.get(connection);
      if (!open) {
        open = new Set();
        this.byConnection.set(connection, open);
      }
      open.add(reservation);
      this.connectionSet.set(reservation, open);
    }
    return null;
  }

  /** A publish admitted earlier failed before it was stored: its room is given back. */
  abandon(publish: { readonly payload?: unknown }): void {
    const reservation = Buffer.isBuffer(publish.payload) ? this.byPayload.get(publish.payload) : undefined;
    if (reservation) {
      this.forget(reservation);
      this.giveBack(reservation);
    }
  }

  notStored(packet: { readonly payload?: unknown }): void {
    this.abandon(packet);
  }

  /** A connection closed: what it published and aedes has not stored yet gives back its room. */
  connectionClosed(connection: PublishConnection): void {
    const open = this.byConnection.get(connection);
    if (!open) return;
    this.byConnection.delete(connection);
    for (const reservation of open) {
      this.connectionSet.delete(reservation);
      this.giveBack(reservation);
    }
  }

  /**
   * Stores a device's QoS 1 retained publish now, before its PUBACK (with `storeBeforeAck`):
   * what cannot be stored is then not acknowledged. aedes' own store of it afterwards does nothing.
   */
  async storeBeforeAck(packet: RetainedPublish): Promise<void> {
    await this.stored(packet);
    this.storedEarly.add(packet.payload);
  }

  async stored(packet: RetainedPublish, owner?: RetainedOwner): Promise<void> {
    if (this.storedEarly.delete(packet.payload)) return;
    const reservation = this.byPayload.get(packet.payload);
    const entry = { topic: packet.topic, owner: owner !== undefined ? owner : (reservation?.owner ?? null), payloadBytes: packet.payload.length, message: packet };
    if (!reservation) {
      await this.ledger.stored(entry);
      return;
    }
    this.byPayload.delete(packet.payload);
    this.forget(reservation);
    await this.ledger.stored(entry, reservation);
  }

  usage(): RetainedUsage {
    return this.ledger.usage();
  }

  /** Forgets which connection a reservation ending now belongs to. */
  private forget(reservation: RetainedReservation): void {
    const open = this.connectionSet.get(reservation);
    if (open) {
      open.delete(reservation);
      this.connectionSet.delete(reservation);
    }
  }

  /**
   * Gives a reservation's room back without waiting. A ledger's release never rejects (see
   * RetainedLedger); the catch is there so that one that did could not become an unhandled
   * rejection, which would end the process.
   */
  private giveBack(reservation: RetainedReservation): void {
    this.ledger.release(reservation).catch(() => {});
  }
}
