import type { AedesOptions } from 'aedes';
import type { ClientIdentities } from '../client-identity.js';

type Authenticate = NonNullable<AedesOptions['authenticate']>;

/** Accepts every client and records its username for templates (`{username}`). */
export function createAuthenticate(identities: ClientIdentities): Authenticate {
  return (client, username, _password, done) => {
    const identity = identities.get(client);
    if (identity) identity.username = username ?? undefined;
    else identities.set(client, { username: username ?? undefined, listener: 'unknown' });
    done(null, true);
  };
}
