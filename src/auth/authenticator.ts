import type { Logger } from 'pino';
import type { ClientIdEntry } from './client-ids.js';
import { BAD_USERNAME_OR_PASSWORD, IDENTIFIER_REJECTED, NOT_AUTHORIZED } from '../protocol/mqtt.js';
import { RateLimitedWarning } from '../observability/rate-limited-warning.js';
import { ClientIdPolicy } from './client-ids.js';
import { FailedAttempts } from './failed-attempts.js';
import { verifyPassword } from './passwords.js';

/** What `auth` says, as the authenticator reads it. */
export interface AuthenticatorSettings {
  readonly anonymous: boolean;
  readonly users: ReadonlyArray<{ readonly username: string; readonly password: string }>;
  readonly certificateUsername: 'none' | 'cn';
  readonly clientIds?: readonly ClientIdEntry[] | undefined;
}

export interface LoginAttempt {
  readonly clientId: string;
  /** The server made the client id up (the CONNECT had none): no `auth.clientIds` pattern applies. */
  readonly clientIdAssigned?: boolean | undefined;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  /** The common name of a client certificate the TLS listener verified. */
  readonly certificateCommonName: string | undefined;
  /** The source address (for slowing down repeated failures). */
  readonly address: string;
  /** Whether the client has hung up meanwhile: then its password is not checked at all. */
  readonly connectionClosed?: (() => boolean) | undefined;
}

export type LoginResult =
  | { ok: true; username: string | undefined }
  | { ok: false; returnCode: typeof IDENTIFIER_REJECTED | typeof BAD_USERNAME_OR_PASSWORD | typeof NOT_AUTHORIZED; reason: string };

/** Checked against when a username is unknown, so that the answer takes as long as for a known one. */
const DECOY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** A client that hung up while its login waited: its password is never checked. */
const HUNG_UP: LoginResult = { ok: false, returnCode: BAD_USERNAME_OR_PASSWORD, reason: 'the client hung up before its password was checked' };

export const FAILED_LOGIN_BASE_DELAY_MS = 250;
export const FAILED_LOGIN_MAX_DELAY_MS = 10_000;
export const FAILED_LOGIN_FORGET_AFTER_MS = 10 * 60_000;

/**
 * Decides who may connect: the configured users (scrypt hashes), verified client certificates
 * (`certificateUsername: cn`) and anonymous clients (`anonymous`). Without an `auth` section
 * everyone may. A source address that keeps failing waits longer and longer for its answers.
 */
export class Authenticator {
  private users = new Map<string, string>();
  private clientIds: ClientIdPolicy | null = null;
  private readonly failures = new FailedAttempts({
    baseDelayMs: FAILED_LOGIN_BASE_DELAY_MS,
    maxDelayMs: FAILED_LOGIN_MAX_DELAY_MS,
    forgetAfterMs: FAILED_LOGIN_FORGET_AFTER_MS,
    maxAddresses: 100_000,
  });
  private readonly refusals: RateLimitedWarning;

  constructor(
    private settings: AuthenticatorSettings | undefined,
    logger: Logger,
  ) {
    this.refusals = new RateLimitedWarning({ logger, message: 'login refused' });
    this.setSettings(settings);
  }

  /** New settings (a reload): users, anonymous switch and certificate identity change at once. */
  setSettings(settings: AuthenticatorSettings | undefined): void {
    this.settings = settings;
    this.users = new Map((settings?.users ?? []).map((user) => [user.username, user.password]));
    this.clientIds = settings?.clientIds ? new ClientIdPolicy(settings.clientIds) : null;
  }

  async login(attempt: LoginAttempt): Promise<LoginResult> {
    const delay = this.failures.delayFor(attempt.address);
    const settled = this.answerWithoutPassword(attempt);
    // A password check is counted as a failure before waiting (its success clears it), so that
    // guesses sent in parallel from one address wait longer and longer, one after another,
    // instead of all getting the delay the first one got.
    let failures = settled ? 0 : this.failures.failed(attempt.address);
    if (delay > 0) await wait(delay);
    let result: LoginResult;
    if (settled) {
      result = settled;
      if (!result.ok) failures = this.failures.failed(attempt.address);
    } else {
      // answerWithoutPassword answered every attempt without a username.
      result = attempt.connectionClosed?.() ? HUNG_UP : await this.checkPassword(attempt.username!, attempt.password);
    }
    if (result.ok) {
      this.failures.succeeded(attempt.address);
      if (this.clientIds && !attempt.clientIdAssigned && !this.clientIds.allows(result.username, attempt.clientId)) {
        result = { ok: false, returnCode: IDENTIFIER_REJECTED, reason: 'auth.clientIds does not let this user use this client id' };
      }
    }
    if (!result.ok) {
      // Never the password: who, from where, and why.
      this.refusals.warn(null, { clientId: attempt.clientId, username: attempt.username, address: attempt.address, reason: result.reason, failures });
    }
    return result;
  }

  /** The answer when no password needs checking (no `auth`, a client certificate, no username); null when one does. */
  private answerWithoutPassword(attempt: LoginAttempt): LoginResult | null {
    const settings = this.settings;
    if (!settings) return { ok: true, username: attempt.username };
    if (settings.certificateUsername === 'cn' && attempt.certificateCommonName !== undefined) {
      if (attempt.username !== undefined && attempt.username !== attempt.certificateCommonName) {
        return { ok: false, returnCode: BAD_USERNAME_OR_PASSWORD, reason: 'username differs from the client certificate' };
      }
      return { ok: true, username: attempt.certificateCommonName };
    }
    if (attempt.username === undefined) {
      return settings.anonymous ? { ok: true, username: undefined } : { ok: false, returnCode: NOT_AUTHORIZED, reason: 'anonymous clients are not allowed' };
    }
    return null;
  }

  private async checkPassword(username: string, password: Buffer | undefined): Promise<LoginResult> {
    const hash = this.users.get(username);
    const matches = await verifyPassword(password?.toString('utf8') ?? '', hash ?? DECOY_HASH);
    if (!hash || !password || !matches) return { ok: false, returnCode: BAD_USERNAME_OR_PASSWORD, reason: 'bad username or password' };
    return { ok: true, username };
  }
}

/** A timer that does not keep the process alive: a stopping bridge does not wait for a slowed-down login. */
function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
