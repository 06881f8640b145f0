import { PENDING_QOS2_ENTRY_BYTES } from '../config/schema.js';

export interface PendingQos2Options {
  /** Bytes of QoS 2 state kept per session; a PUBLISH past it is refused. */
  maxBytesPerSession: number;
}

/**
 * The QoS 2 receive state of each session: the packet ids of PUBLISHes taken (forwarded, answered
 * with PUBREC) and awaiting PUBREL, by which a resent PUBLISH is recognised and not forwarded
 * again [MQTT-4.3.3-2]. aedes' in-memory persistence kept the whole PUBLISH, payload included, per
 * client id until PUBREL, also for a session whose client never returns; aedes needs only to know
 * the id is there (lib/handlers/publish.js, pubrel.js), and the bridge forwards the PUBLISH as it
 * arrives, so the id is all that is kept, and its bytes per session are bounded.
 */
export class PendingQos2 {
  private readonly bySession = new Map<string, Set<number>>();

  constructor(private readonly options: PendingQos2Options) {}

  /** Records a packet id; false, recording nothing, when the session would hold more than its bound. */
  add(clientId: string, messageId: number): boolean {
    let ids = this.bySession.get(clientId);
    if (ids?.has(messageId)) return true;
    if (((ids?.size ?? 0) + 1) * PENDING_QOS2_ENTRY_BYTES > this.options.maxBytesPerSession) return false;
    if (!ids) {
      ids = new Set();
      this.bySession.set(clientId, ids);
    }
    ids.add(messageId);
    return true;
  }

  has(clientId: string, messageId: number): boolean {
    return this.bySession.get(clientId)?.has(messageId) ?? false;
  }

  /** Forgets a packet id (its PUBREL came, or its forward failed); false when it was not there. */
  delete(clientId: string, messageId: number): boolean {
    const ids = this.bySession.get(clientId);
    if (!ids?.delete(messageId)) return false;
    if (ids.size === 0) this.bySession.delete(clientId);
    return true;
  }

  /** Forgets a session's QoS 2 state (a clean session starts or ends, a session expires). */
  clear(clientId: string): void {
    this.bySession.delete(clientId);
  }

  /** The bytes a session's QoS 2 state counts now. */
  bytesOf(clientId: string): number {
    return (this.bySession.get(clientId)?.size ?? 0) * PENDING_QOS2_ENTRY_BYTES;
  }

  /** The sessions that hold QoS 2 state now. */
  get sessions(): number {
    return this.bySession.size;
  }
}
