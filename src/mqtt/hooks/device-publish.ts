import type { Client, PublishPacket } from 'aedes';
import type { ClientIdentities } from '../client-identity.js';
import type { DevicePublish } from '../types.js';

export function toDevicePublish(client: Client | null, packet: PublishPacket, identities: ClientIdentities): DevicePublish {
  const payload = packet.payload;
  return {
    topic: packet.topic,
    payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
    qos: packet.qos,
    retain: packet.retain === true,
    // A will published for a client of another broker instance comes without a client.
    clientId: client?.id ?? (packet as { clientId?: string }).clientId ?? '',
    username: identities.get(client)?.username,
  };
}
