import type { AedesOptions } from 'aedes';
import type { ClientIdentities } from '../client-identity.js';

type Authenticate = NonNullable<AedesOptions['authenticate']>;

/** CONNACK return code 2: identifier rejected. */
export const IDENTIFIER_REJECTED = 2;
/** CONNACK return code 3 [MQTT-3.2.2-3]: the server is unavailable. */
export const SERVER_UNAVAILABLE = 3;

/**
 * Accepts every client unless `refusal` returns a CONNACK return code (2..5) for it, and
 * records its username for templates (`{username}`).
 */
export function createAuthenticate(identities: ClientIdentities, refusal: () => number | null = () => null): Authenticate {
  return (client, username, _password, done) => {
    const problem = identities.get(client)?.clientIdProblem;
    if (problem) {
      done(Object.assign(new Error(`identifier rejected: ${problem}`), { returnCode: IDENTIFIER_REJECTED }), null);
      return;
    }
    const code = refusal();
    if (code !== null) {
      done(Object.assign(new Error(code === SERVER_UNAVAILABLE ? 'server unavailable: RabbitMQ is unreachable' : 'refused'), { returnCode: code }), null);
      return;
    }
    const identity = identities.get(client);
    if (identity) identity.username = username ?? undefined;
    else identities.set(client, { username: username ?? undefined, listener: 'unknown' });
    done(null, true);
  };
}
