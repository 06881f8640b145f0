/**
 * QoS 2 publishes being forwarded, by client id and packet id. A device that reconnects
 * and resends a QoS 2 PUBLISH while the first copy still awaits RabbitMQ's confirm must not
 * have it forwarded twice [MQTT-4.3.3-2]: the resend waits until the first copy settles, then
 * aedes' own duplicate check (or, if the first copy failed, a fresh forward) takes over.
 *
 * Called for every QoS 2 publish: a map per client keyed by the packet id (a number), and no
 * array until something waits, rather than a string key built and hashed per publish.
 */
export class Qos2Forwards {
  /** By client id: the packet ids being forwarded, each with what waits for it (null: nothing yet). */
  private readonly pending = new Map<string, Map<number, Array<() => void> | null>>();

  begin(clientId: string, messageId: number): void {
    let forwarding = this.pending.get(clientId);
    if (!forwarding) this.pending.set(clientId, (forwarding = new Map<number, Array<() => void> | null>()));
    if (!forwarding.has(messageId)) forwarding.set(messageId, null);
  }

  end(clientId: string, messageId: number): void {
    const forwarding = this.pending.get(clientId);
    if (!forwarding?.has(messageId)) return;
    const waiters = forwarding.get(messageId);
    forwarding.delete(messageId);
    if (forwarding.size === 0) this.pending.delete(clientId);
    if (waiters) for (const waiter of waiters) waiter();
  }

  /** Runs `then` once no forward of this packet is pending. */
  afterPending(clientId: string, messageId: number, then: () => void): void {
    const forwarding = this.pending.get(clientId);
    if (!forwarding?.has(messageId)) {
      then();
      return;
    }
    const waiters = forwarding.get(messageId);
    if (waiters) waiters.push(then);
    else forwarding.set(messageId, [then]);
  }

  /** Clients with a forward pending now. */
  get clients(): number {
    return this.pending.size;
  }
}
