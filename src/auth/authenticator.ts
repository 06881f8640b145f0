import type { Logger } from 'pino';
import type { AuthSettings } from '../config/schema.js';
import { RateLimitedWarning } from '../observability/rate-limited-warning.js';
import { FailedAttempts } from './failed-attempts.js';
import { verifyPassword } from './passwords.js';

/** CONNACK return codes of MQTT 3.1.1 for refused logins. */
export const BAD_USERNAME_OR_PASSWORD = 4;
export const NOT_AUTHORIZED = 5;

export interface LoginAttempt {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Buffer | undefined;
  /** The common name of a client certificate the TLS listener verified. */
  readonly certificateCommonName: string | undefined;
  /** The source address (for slowing down repeated failures). */
  readonly address: string;
}

export type LoginResult = { ok: true; username: string | undefined } | { ok: false; returnCode: 4 | 5; reason: string };

/** Checked against when a username is unknown, so that the answer takes as long as for a known one. */
const DECOY_HASH = 'scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

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
  private readonly failures = new FailedAttempts({
    baseDelayMs: FAILED_LOGIN_BASE_DELAY_MS,
    maxDelayMs: FAILED_LOGIN_MAX_DELAY_MS,
    forgetAfterMs: FAILED_LOGIN_FORGET_AFTER_MS,
    maxAddresses: 100_000,
  });
  private readonly refusals: RateLimitedWarning;

  constructor(
    private settings: AuthSettings | undefined,
    logger: Logger,
  ) {
    this.refusals = new RateLimitedWarning({ logger, message: 'login refused' });
    this.setSettings(settings);
  }

  /** New settings (a reload): users, anonymous switch and certificate identity change at once. */
  setSettings(settings: AuthSettings | undefined): void {
    this.settings = settings;
    this.users = new Map((settings?.users ?? []).map((user) => [user.username, user.password]));
  }

  get open(): boolean {
    return this.settings === undefined;
  }

  async login(attempt: LoginAttempt): Promise<LoginResult> {
    const delay = this.failures.delayFor(attempt.address);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const result = await this.decide(attempt);
    if (result.ok) {
      this.failures.succeeded(attempt.address);
    } else {
      const failures = this.failures.failed(attempt.address);
      // Never the password: who, from where, and why.
      this.refusals.warn(null, { clientId: attempt.clientId, username: attempt.username, address: attempt.address, reason: result.reason, failures });
    }
    return result;
  }

  private async decide(attempt: LoginAttempt): Promise<LoginResult> {
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
    const hash = this.users.get(attempt.username);
    const password = attempt.password?.toString('utf8') ?? '';
    const matches = await verifyPassword(password, hash ?? DECOY_HASH);
    if (!hash || !attempt.password || !matches) return { ok: false, returnCode: BAD_USERNAME_OR_PASSWORD, reason: 'bad username or password' };
    return { ok: true, username: attempt.username };
  }
}
