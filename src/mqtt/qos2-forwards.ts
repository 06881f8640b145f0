/**
 * QoS 2 publishes being forwarded, keyed by client id and packet id. A device that reconnects
 * and resends a QoS 2 PUBLISH while the first copy still awaits RabbitMQ's confirm must not
 * have it forwarded twice [MQTT-4.3.3-2]: the resend waits until the first copy settles, then
 * aedes' own duplicate check (or, if the first copy failed, a fresh forward) takes over.
 */
export class Qos2Forwards {
  private readonly pending = new Map<string, Array<() => void>>();

  private static key(clientId: string, messageId: number): string {
    return `${clientId}\u0000${messageId}`;
  }

  begin(clientId: string, messageId: number): void {
    const key = Qos2Forwards.key(clientId, messageId);
    if (!this.pending.has(key)) this.pending.set(key, []);
  }

  end(clientId: string, messageId: number): void {
    const key = Qos2Forwards.key(clientId, messageId);
    const waiters = this.pending.get(key);
    this.pending.delete(key);
    for (const waiter of waiters ?? []) waiter();
  }

  /** Runs `then` once no forward of this packet is pending. */
  afterPending(clientId: string, messageId: number, then: () => void): void {
    const waiters = this.pending.get(Qos2Forwards.key(clientId, messageId));
    if (waiters) waiters.push(then);
    else then();
  }
}
