import type { AedesOptions } from 'aedes';
import { LoginRefusedError } from '../../errors.js';
import { IDENTIFIER_REJECTED, NOT_AUTHORIZED, SERVER_UNAVAILABLE } from '../../protocol/mqtt.js';
import { pendingWill } from '../aedes-internals.js';
import type { ClientIdentities } from '../client-identity.js';
import { ownerOf, type SessionRegistry } from '../session-registry.js';

type Authenticate = NonNullable<AedesOptions['authenticate']>;

/** Who may log in; the MQTT side only asks. */
export interface LoginCheck {
  login(attempt: {
    clientId: string;
    clientIdAssigned: boolean;
    username: string | undefined;
    password: Buffer | undefined;
    certificateCommonName: string | undefined;
    address: string;
    connectionClosed: () => boolean;
  }): Promise<{ ok: true; username: string | undefined } | { ok: false; returnCode: number; reason: string }>;
}

/** Why a client id was refused to an identity that logged in: another holds it, or it holds its most sessions. */
export type SessionRefusal = 'owned_by_another' | 'sessions_per_user';

export interface AuthenticateOptions {
  /** A CONNACK return code to refuse every new connection with (RabbitMQ unreachable), or null. */
  refusal: () => number | null;
  logins: LoginCheck | null;
  /** Whether a client may connect with this will (checked against the ACL at CONNECT); null when there is no will. */
  willAllowed?: (clientId: string, username: string | undefined, willTopic: string) => boolean;
  /** Who owns which client id, and how many persistent sessions one identity may hold. */
  sessions: { registry: SessionRegistry; maxPersistentSessions: number };
  /** Called for each CONNECT refused because of whom the client id belongs to, or the identity's session cap. */
  onSessionRefused?: (reason: SessionRefusal, clientId: string, username: string | undefined) => void;
}

const SESSION_REFUSALS: Record<SessionRefusal, string> = {
  owned_by_another: 'the client id belongs to a session or connection of another user',
  sessions_per_user: 'the user holds mqtt.maxSessionsPerUser persistent sessions already',
};

/**
 * CONNECT: refuses an unacceptable client identifier (2), every connection while RabbitMQ has
 * been away too long or the session registry (Redis) cannot answer (3), bad credentials (4) and clients not allowed in, whose will the ACL
 * does not allow, whose client id another identity holds or that would pass their identity's
 * session cap (5); records the username for templates and the ACL, and the client id's claim.
 */
export function createAuthenticate(identities: ClientIdentities, options: AuthenticateOptions): Authenticate {
  return (client, username, password, done) => {
    const identity = identities.get(client);
    if (identity?.clientIdProblem) {
      done(new LoginRefusedError(IDENTIFIER_REJECTED, `identifier rejected: ${identity.clientIdProblem}`), null);
      return;
    }
    const code = options.refusal();
    if (code !== null) {
      done(new LoginRefusedError(code, 'server unavailable: RabbitMQ is unreachable'), null);
      return;
    }
    const accept = async (name: string | undefined) => {
      const will = pendingWill(client);
      if (will && options.willAllowed && !options.willAllowed(client.id, name, will.topic)) {
        done(new LoginRefusedError(NOT_AUTHORIZED, `the ACL does not allow publishing the will on "${will.topic}"`), null);
        return;
      }
      // Claimed last: nothing after this refuses the connection, so a refused CONNECT holds nothing.
      const { registry, maxPersistentSessions } = options.sessions;
      let claimed;
      try {
        claimed = await registry.claim({ clientId: client.id, owner: ownerOf(name), persistent: !client.clean, maxPersistentSessions });
      } catch (error) {
        // A registry that cannot answer (Redis away): the server cannot take the session now.
        done(new LoginRefusedError(SERVER_UNAVAILABLE, `server unavailable: the session registry did not answer (${(error as Error).message})`), null);
        return;
      }
      if (!claimed.ok) {
        options.onSessionRefused?.(claimed.reason, client.id, name);
        done(new LoginRefusedError(NOT_AUTHORIZED, SESSION_REFUSALS[claimed.reason]), null);
        return;
      }
      if (client.closed) {
        // It hung up while its claim was made: aedes will not go on with it, so nothing else releases it.
        registry.release(client.id, claimed.claim);
        return;
      }
      if (identity) {
        identity.username = name;
        identity.claim = claimed.claim;
      } else {
        identities.set(client, { username: name, listener: 'unknown', claim: claimed.claim });
      }
      done(null, true);
    };
    const failed = (error: Error) => done(new LoginRefusedError(NOT_AUTHORIZED, error.message), null);
    if (!options.logins) {
      accept(username ?? undefined).catch(failed);
      return;
    }
    options.logins
      .login({
        clientId: client.id,
        clientIdAssigned: identity?.clientIdAssigned === true,
        username: username ?? undefined,
        password: password ?? undefined,
        certificateCommonName: identity?.certificateCommonName,
        address: identity?.address ?? 'unknown',
        connectionClosed: () => client.closed,
      })
      .then((result) => (result.ok ? accept(result.username) : done(new LoginRefusedError(result.returnCode, result.reason), null)))
      .catch(failed);
  };
}
