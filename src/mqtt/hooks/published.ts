import type { Aedes, AedesOptions } from 'aedes';
import type { ClientIdentities } from '../client-identity.js';
import type { Qos2Forwards } from '../qos2-forwards.js';
import type { PublishHandler } from '../types.js';
import { toDevicePublish } from './device-publish.js';
import { DENIED_TOPIC } from '../access.js';
import { brokerPersistence } from '../aedes-internals.js';

type Published = NonNullable<AedesOptions['published']>;

/**
 * QoS 2 publishes go onward here: aedes calls `published` only for a packet id it has not
 * stored yet (a resent PUBLISH is answered from its store) and writes PUBREC after this calls
 * back, so the device gets PUBREC once RabbitMQ confirmed, and a message exactly once.
 * Publishes without a client (downlink, $SYS) and QoS 0/1 (already forwarded) pass through.
 */
export function createPublished(handler: PublishHandler, identities: ClientIdentities, qos2: Qos2Forwards, broker: () => Aedes): Published {
  return (packet, client, callback) => {
    if (!client || packet.qos !== 2 || packet.topic === DENIED_TOPIC) {
      callback(null);
      return;
    }
    const messageId = typeof packet.messageId === 'number' ? packet.messageId : null;
    if (messageId !== null) qos2.begin(client.id, messageId);
    handler.onPublish(toDevicePublish(client, packet, identities), (error) => {
      if (messageId === null) {
        callback(error);
        return;
      }
      if (!error) {
        qos2.end(client.id, messageId);
        callback(null);
        return;
      }
      // Not forwarded: forget the stored packet so that the device's resend is forwarded
      // anew instead of being answered as a duplicate.
      const forwarded = messageId;
      const finish = () => {
        qos2.end(client.id, forwarded);
        callback(error);
      };
      const persistence = brokerPersistence<{ incomingDelPacket(client: unknown, packet: unknown): Promise<void> }>(broker());
      persistence.incomingDelPacket(client, packet).then(finish, finish);
    });
  };
}
