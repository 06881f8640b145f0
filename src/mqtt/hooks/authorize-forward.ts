import type { AedesOptions, Client } from 'aedes';
import type { AccessPolicy } from '../access.js';
import { heldSubscriptions } from '../aedes-internals.js';
import { levelsMatch, levelsOf } from '../../protocol/mqtt.js';
import { usernameOfOwner, type SessionHolder } from '../session-registry.js';

type AuthorizeForward = NonNullable<AedesOptions['authorizeForward']>;

/** The receiving client's right to a message: the ACL asked with its identity, denials reported. */
export interface DeliveryCheck {
  readonly access: AccessPolicy;
  readonly usernameOf: (client: Client) => string | undefined;
  readonly denied: (client: Client, topic: string) => void;
}

/**
 * Every delivery passes here: live messages, retained messages sent on SUBSCRIBE, messages
 * queued for a persistent session (aedes drops one this refuses from the queue), downlink
 * messages and wills. A message on a topic the receiving client's ACL does not let it
 * subscribe to is not sent: a session that once held a broader subscription, or messages
 * queued before the ACL changed, never carry a denied topic to that client.
 *
 * It also delivers each message with at most the QoS the client was granted [MQTT-3.8.4-6]. aedes
 * lowers the QoS only when the subscription's filter is the topic itself, so a QoS 2 message
 * reached a wildcard subscription granted QoS 1 at QoS 2. When several of the client's filters
 * match, the highest granted QoS applies [MQTT-3.3.5-1].
 *
 * The packet is lowered in place: aedes hands this hook a Packet of the client's own (a copy
 * per subscription for live deliveries, per client for retained and queued ones), never one
 * another subscriber also receives.
 */
export function createAuthorizeForward(delivery: DeliveryCheck | null = null): AuthorizeForward {
  const recent = new WeakMap<Client, RecentDeliveries>();
  return (client, packet) => {
    if (packet.brokerId) {
      let seen = recent.get(client);
      if (!seen) {
        seen = new RecentDeliveries();
        recent.set(client, seen);
      }
      // The same publish reaches a client once per matching subscription: one copy is enough [MQTT-3.3.5-1].
      if (seen.repeat(packet.brokerId, packet.brokerCounter)) return null;
    }
    if (delivery?.access.enforced && !delivery.access.canSubscribe({ clientId: client.id, username: delivery.usernameOf(client) }, packet.topic)) {
      delivery.denied(client, packet.topic);
      return null;
    }
    if (packet.qos === 0) return packet;
    const subscriptions = heldSubscriptions(client);
    let lowest: number = packet.qos;
    for (const filter in subscriptions) lowest = Math.min(lowest, subscriptions[filter]!.qos ?? 0);
    if (lowest === packet.qos) return packet; // no subscription could lower it
    const topic = levelsOf(packet.topic);
    let granted = -1;
    for (const filter in subscriptions) {
      const qos = subscriptions[filter]!.qos ?? 0;
      if (qos <= granted || !levelsMatch(levelsOf(filter), topic)) continue;
      if (qos >= packet.qos) return packet;
      granted = qos;
    }
    if (granted >= 0) packet.qos = granted as 0 | 1;
    return packet;
  };
}

/** The ACL's check of what may be queued for a session whose client is away. */
export interface QueueCheck {
  /** False while no ACL is in force: everything may be queued, and no holder need be looked up. */
  readonly enforced: boolean;
  /** Whether a message on `topic` may be queued for the session of `clientId`, which `holder` holds (undefined: nobody is recorded). */
  mayQueue(clientId: string, topic: string, holder: SessionHolder | undefined): boolean;
}

/**
 * The same check for a message about to be queued for a persistent session whose client is away
 * (aedes queues it without asking authorizeForward): asked with the identity that owns the
 * session, a message the client may not receive is not queued, and is reported here, once. For a
 * connected client the message is queued and authorizeForward decides (and reports) as it is
 * sent; a session restored from a file that did not record its owner queues everything, and each
 * message is checked when it is sent. The session store looks the holders up (at once in memory,
 * in one round trip for all of a message's sessions in Redis), only while an ACL is in force.
 */
export function createQueueCheck(access: AccessPolicy): QueueCheck {
  return {
    get enforced() {
      return access.enforced;
    },
    mayQueue(clientId, topic, holder) {
      if (!access.enforced) return true;
      if (!holder || holder.connected || holder.owner === null) return true;
      if (access.canSubscribe({ clientId, username: usernameOfOwner(holder.owner) }, topic)) return true;
      access.denied('deliver', clientId, topic);
      return false;
    },
  };
}

/** How many publishes a client's duplicate check remembers: the copies of one publish arrive together. */
export const RECENT_DELIVERIES = 16;

/**
 * The last publishes delivered to one connection, by broker id and counter. aedes hands every
 * matching subscription of a client its own copy of a publish, one after another in the same
 * turn; the second is a duplicate. Unlike aedes' own check (highest counter wins, which dropped
 * messages that arrived out of counter order), this remembers exactly which were delivered.
 */
class RecentDeliveries {
  private readonly brokerIds: Array<string | undefined> = new Array<string | undefined>(RECENT_DELIVERIES);
  private readonly counters = new Float64Array(RECENT_DELIVERIES);
  private next = 0;

  /** Whether this publish was delivered already; records it when not. */
  repeat(brokerId: string, counter: number): boolean {
    for (let i = 0; i < RECENT_DELIVERIES; i++) if (this.counters[i] === counter && this.brokerIds[i] === brokerId) return true;
    this.brokerIds[this.next] = brokerId;
    this.counters[this.next] = counter;
    this.next = (this.next + 1) % RECENT_DELIVERIES;
    return false;
  }
}
