import type { AedesOptions } from 'aedes';
import { pendingWill } from '../aedes-internals.js';
import type { ClientIdentities } from '../client-identity.js';

type Authenticate = NonNullable<AedesOptions['authenticate']>;

/** CONNACK return code 2: identifier rejected. */
export const IDENTIFIER_REJECTED = 2;
/** CONNACK return code 3 [MQTT-3.2.2-3]: the server is unavailable. */
export const SERVER_UNAVAILABLE = 3;
/** CONNACK return code 4: bad user name or password. */
export const BAD_USERNAME_OR_PASSWORD = 4;
/** CONNACK return code 5: not authorized. */
export const NOT_AUTHORIZED = 5;

/** Who may log in; the MQTT side only asks. */
export interface LoginCheck {
  login(attempt: {
    clientId: string;
    username: string | undefined;
    password: Buffer | undefined;
    certificateCommonName: string | undefined;
    address: string;
    connectionClosed: () => boolean;
  }): Promise<{ ok: true; username: string | undefined } | { ok: false; returnCode: number; reason: string }>;
}

export interface AuthenticateOptions {
  /** A CONNACK return code to refuse every new connection with (RabbitMQ unreachable), or null. */
  refusal: () => number | null;
  logins: LoginCheck | null;
  /** Whether a client may connect with this will (checked against the ACL at CONNECT); null when there is no will. */
  willAllowed?: (clientId: string, username: string | undefined, willTopic: string) => boolean;
}

function refuse(returnCode: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}

/**
 * CONNECT: refuses an unacceptable client identifier (2), every connection while RabbitMQ has
 * been away too long (3), bad credentials (4) and clients not allowed in, or whose will the ACL
 * does not allow (5); records the username for templates and the ACL.
 */
export function createAuthenticate(identities: ClientIdentities, options: AuthenticateOptions): Authenticate {
  return (client, username, password, done) => {
    const identity = identities.get(client);
    if (identity?.clientIdProblem) {
      done(refuse(IDENTIFIER_REJECTED, `identifier rejected: ${identity.clientIdProblem}`), null);
      return;
    }
    const code = options.refusal();
    if (code !== null) {
      done(refuse(code, 'server unavailable: RabbitMQ is unreachable'), null);
      return;
    }
    const accept = (name: string | undefined) => {
      const will = pendingWill(client);
      if (will && options.willAllowed && !options.willAllowed(client.id, name, will.topic)) {
        done(refuse(NOT_AUTHORIZED, `the ACL does not allow publishing the will on "${will.topic}"`), null);
        return;
      }
      if (identity) identity.username = name;
      else identities.set(client, { username: name, listener: 'unknown' });
      done(null, true);
    };
    if (!options.logins) {
      accept(username ?? undefined);
      return;
    }
    options.logins
      .login({
        clientId: client.id,
        username: username ?? undefined,
        password: password ?? undefined,
        certificateCommonName: identity?.certificateCommonName,
        address: identity?.address ?? 'unknown',
        connectionClosed: () => client.closed,
      })
      .then(
        (result) => (result.ok ? accept(result.username) : done(refuse(result.returnCode, result.reason), null)),
        (error: Error) => done(refuse(NOT_AUTHORIZED, error.message), null),
      );
  };
}
