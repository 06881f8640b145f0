import type { AedesOptions } from 'aedes';
import type { ClientIdentities } from '../client-identity.js';

type PreConnect = NonNullable<AedesOptions['preConnect']>;

/**
 * Looks at the CONNECT before aedes replaces an empty client identifier by a generated one,
 * and notes what makes the identifier unacceptable; `authenticate` then answers CONNACK return
 * code 2 (identifier rejected), which preConnect itself cannot send.
 */
export function createPreConnect(identities: ClientIdentities, maxClientIdLength: number): PreConnect {
  return (client, packet, callback) => {
    const identity = identities.get(client);
    const clientId = packet.clientId ?? '';
    let problem: string | undefined;
    // [MQTT-3.1.3-8] a zero-byte client identifier needs clean session = 1.
    if (clientId.length === 0 && packet.clean === false) problem = 'a zero-length client identifier needs clean session';
    // aedes checks the length only for MQTT 3.1; [MQTT-3.1.3-5] lets a server refuse long ones in 3.1.1 too.
    else if (clientId.length > maxClientIdLength) problem = `client identifier longer than ${maxClientIdLength} characters`;
    else if (clientId.includes('\u0000') || clientId.includes('\ufffd')) problem = 'client identifier is not valid UTF-8 without U+0000';
    if (identity && problem) identity.clientIdProblem = problem;
    if (identity) identity.clientIdAssigned = clientId.length === 0;
    callback(null, true);
  };
}
