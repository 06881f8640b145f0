import type { AedesOptions } from 'aedes';
import { heldSubscriptions } from '../aedes-internals.js';
import { levelsMatch, levelsOf } from '../topic-filter.js';

type AuthorizeForward = NonNullable<AedesOptions['authorizeForward']>;

/**
 * Delivers each message with at most the QoS the client was granted [MQTT-3.8.4-6]. aedes
 * lowers the QoS only when the subscription's filter is the topic itself, so a QoS 2 message
 * reached a wildcard subscription granted QoS 1 at QoS 2. When several of the client's filters
 * match, the highest granted QoS applies [MQTT-3.3.5-1].
 *
 * The packet is lowered in place: aedes hands this hook a Packet of the client's own (a copy
 * per subscription for live deliveries, per client for retained and queued ones), never one
 * another subscriber also receives.
 */
export function createAuthorizeForward(): AuthorizeForward {
  return (client, packet) => {
    if (packet.qos === 0) return packet;
    const subscriptions = heldSubscriptions(client);
    let lowest = packet.qos;
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
