import type { AedesOptions } from 'aedes';
import type { ClientIdentities } from '../client-identity.js';
import type { Qos2Forwards } from '../qos2-forwards.js';
import type { PublishHandler } from '../types.js';
import { toDevicePublish } from './device-publish.js';

type AuthorizePublish = NonNullable<AedesOptions['authorizePublish']>;

export const SYS_PREFIX = '$SYS/';

/**
 * Where QoS 0 and 1 publishes (and QoS 0/1 wills) go onward: aedes writes the PUBACK only
 * after this hook calls back, so calling back after RabbitMQ's confirm is what makes a
 * PUBACK mean "RabbitMQ has it". QoS 2 is forwarded from `published` instead (see there).
 */
export function createAuthorizePublish(handler: PublishHandler, identities: ClientIdentities, qos2: Qos2Forwards): AuthorizePublish {
  return (client, packet, callback) => {
    if (packet.topic.startsWith(SYS_PREFIX)) {
      callback(new Error(`${SYS_PREFIX} topics are reserved for the server`));
      return;
    }
    if (packet.qos === 2) {
      if (client && typeof packet.messageId === 'number') qos2.afterPending(client.id, packet.messageId, () => callback(null));
      else callback(null);
      return;
    }
    handler.onPublish(toDevicePublish(client, packet, identities), (error) => callback(error));
  };
}
