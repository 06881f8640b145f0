import type { AedesOptions, Client, PublishPacket } from 'aedes';
import { BridgeError, RetainedLimitError } from '../../errors.js';
import { topicLimitBroken, type LimitName, type TopicLimits } from '../limits.js';
import { DENIED_TOPIC, type AccessPolicy, type PublishRate } from '../access.js';
import type { ClientIdentities } from '../client-identity.js';
import type { Qos2Forwards } from '../qos2-forwards.js';
import type { RetainedQuota } from '../retained-quota.js';
import type { DevicePublish, PublishHandler } from '../types.js';
import { toDevicePublish } from './device-publish.js';

type AuthorizePublish = NonNullable<AedesOptions['authorizePublish']>;
type Callback = Parameters<AuthorizePublish>[2];

export const SYS_PREFIX = '$SYS/';

/**
 * Where QoS 0 and 1 publishes (and QoS 0/1 wills) go onward: aedes writes the PUBACK only
 * after this hook calls back, so calling back after RabbitMQ's confirm is what makes a
 * PUBACK mean "RabbitMQ has it". QoS 2 is forwarded from `published` instead (see there).
 * aedes also stores a retained publish only after this hook, so the retained limits are
 * checked here, last, before anything is forwarded.
 */
export function createAuthorizePublish(
  handler: PublishHandler,
  identities: ClientIdentities,
  qos2: Qos2Forwards,
  limits: TopicLimits,
  refused: (limit: LimitName, client: Client | null, topic: string) => void,
  access: AccessPolicy | null = null,
  rate: PublishRate | null = null,
  retained: RetainedQuota | null = null,
): AuthorizePublish {
  /**
   * Takes a publish onward, a retained one once the retained limits admit it; `publish` when the
   * ACL check already built it; `connection` the open connection it arrived on (null for a will).
   */
  const forward = (client: Client | null, connection: Client | null, packet: PublishPacket, publish: DevicePublish | null, callback: Callback) => {
    if (!retained || !packet.retain) {
      send(client, packet, publish, callback);
      return;
    }
    if (!Buffer.isBuffer(packet.payload)) packet.payload = Buffer.from(packet.payload);
    // A will from another broker instance comes without its client: it counts in the totals only.
    const owner = client ? { username: (publish ? publish.username : identities.get(client)?.username) ?? null } : null;
    const admitted = (limit: LimitName | null) => {
      if (limit) {
        // Not forwarded, stored or acknowledged; MQTT 3.1.1 cannot refuse one PUBLISH, so aedes
        // closes the connection [MQTT-4.8.0-1] (a will is not published).
        refused(limit, client, packet.topic);
        callback(new RetainedLimitError(limit, packet.topic));
        return;
      }
      send(client, packet, publish, (error) => {
        if (error) {
          retained.abandon(packet);
          callback(error);
          return;
        }
        // aedes writes a QoS 1 PUBACK before it stores the retained message: a store that can
        // fail (Redis) stores it first, so that what it could not store is not acknowledged.
        if (retained.options.storeBeforeAck && packet.qos === 1 && connection) {
          retained.storeBeforeAck(packet as PublishPacket & { payload: Buffer }).then(
            () => callback(null),
            (stored: Error) => {
              retained.abandon(packet);
              callback(stored);
            },
          );
          return;
        }
        callback(null);
      });
    };
    const limit = retained.admit(packet as PublishPacket & { payload: Buffer }, owner, connection);
    if (limit instanceof Promise) limit.then(admitted, (error: Error) => callback(error));
    else admitted(limit);
  };
  const send = (client: Client | null, packet: PublishPacket, publish: DevicePublish | null, callback: Callback) => {
    if (packet.qos === 2) {
      if (client && typeof packet.messageId === 'number') qos2.afterPending(client.id, packet.messageId, () => callback(null));
      else callback(null);
      return;
    }
    handler.onPublish(publish ?? toDevicePublish(client, packet, identities), callback);
  };
  return (client, packet, callback) => {
    // aedes authorizes a will after it has closed the connection, and no packet of it then.
    const connection = client && !client.closed ? client : null;
    if (packet.topic.startsWith(SYS_PREFIX)) {
      callback(new BridgeError('BRIDGE_ERR_PUBLISH_REFUSED', `${SYS_PREFIX} topics are reserved for the server`));
      return;
    }
    const broken = topicLimitBroken(packet.topic, limits);
    if (broken) {
      // MQTT 3.1.1 cannot refuse one PUBLISH: the connection is closed [MQTT-4.8.0-1].
      refused(broken, client, packet.topic);
      callback(new BridgeError('BRIDGE_ERR_PUBLISH_REFUSED', `topic exceeds the ${broken === 'topic_length' ? 'length' : 'level'} limit`));
      return;
    }
    let publish: DevicePublish | null = null;
    if (access?.enforced) {
      publish = toDevicePublish(client, packet, identities);
      if (!access.canPublish(publish, publish.topic)) {
        access.denied('publish', publish.clientId, publish.topic);
        if (access.onDeniedPublish === 'disconnect' || !client) {
          callback(new BridgeError('BRIDGE_ERR_PUBLISH_REFUSED', `the ACL does not allow publishing on "${packet.topic}"`));
          return;
        }
        // Acknowledged, and delivered nowhere: see DENIED_TOPIC.
        packet.topic = DENIED_TOPIC;
        packet.retain = false;
        callback(null);
        return;
      }
    }
    if (!rate || !client) {
      forward(client, connection, packet, publish, callback);
      return;
    }
    if (packet.qos === 0) {
      if (rate.tryTake(client.id)) {
        forward(client, connection, packet, publish, callback);
      } else {
        rate.dropped(client.id);
        packet.topic = DENIED_TOPIC; // dropped: not forwarded, not delivered to anyone
        packet.retain = false;
        callback(null);
      }
      return;
    }
    const wait = rate.take(client.id);
    if (wait === 0) {
      forward(client, connection, packet, publish, callback);
      return;
    }
    // Delayed, not refused: holding the callback also stops aedes reading this client meanwhile.
    rate.delayed(client.id);
    setTimeout(() => forward(client, connection, packet, publish, callback), wait);
  };
}
