import type { AedesOptions, AedesPublishPacket } from 'aedes';
import { filterMatches } from '../topic-filter.js';

type AuthorizeForward = NonNullable<AedesOptions['authorizeForward']>;

/**
 * Delivers each message with at most the QoS the client was granted [MQTT-3.8.4-6]. aedes
 * lowers the QoS only when the subscription's filter is the topic itself, so a QoS 2 message
 * reached a wildcard subscription granted QoS 1 at QoS 2. When several of the client's filters
 * match, the highest granted QoS applies [MQTT-3.3.5-1].
 */
export function createAuthorizeForward(): AuthorizeForward {
  return (client, packet) => {
    if (packet.qos === 0) return packet;
    const subscriptions = (client as unknown as { subscriptions: Record<string, { qos?: number }> }).subscriptions;
    let granted = -1;
    for (const filter in subscriptions) {
      if (filterMatches(filter, packet.topic)) granted = Math.max(granted, subscriptions[filter]!.qos ?? 0);
    }
    if (granted < 0 || packet.qos <= granted) return packet;
    // A message queued for an offline session is a fresh copy per client and aedes writes that
    // very object: lower it in place. A live delivery is shared by every subscriber: copy it.
    if ('writeCallback' in packet) {
      packet.qos = granted as 0 | 1 | 2;
      return packet;
    }
    return Object.assign(Object.create(Object.getPrototypeOf(packet) as object) as AedesPublishPacket, packet, { qos: granted });
  };
}
