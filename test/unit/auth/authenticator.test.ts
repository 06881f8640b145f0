import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { Authenticator, FAILED_LOGIN_BASE_DELAY_MS, type AuthenticatorSettings, type LoginAttempt, type LoginResult } from '../../../src/auth/authenticator.js';
import { hashPassword } from '../../../src/auth/passwords.js';
import { silentLogger } from '../../../src/observability/logger.js';

const PASSWORD = 'correct horse';
/** A cheap hash: these tests are about timing, not about scrypt's cost. */
const settings = async (): Promise<AuthenticatorSettings> =>
  ({ anonymous: false, certificateUsername: 'none', users: [{ username: 'sensor-1', password: await hashPassword(PASSWORD, 16) }] });

const attempt = (password: string, overrides: Partial<LoginAttempt> = {}): LoginAttempt => ({
  clientId: 'c',
  username: 'sensor-1',
  password: Buffer.from(password),
  certificateCommonName: undefined,
  address: '192.0.2.7',
  ...overrides,
});

/** A login whose outcome can be looked at before it settles. */
function tracked(login: Promise<LoginResult>) {
  const state: { result: LoginResult | null; promise: Promise<LoginResult> } = { result: null, promise: login };
  void login.then((result) => (state.result = result));
  return state;
}

/** Lets pending callbacks run (the mocked clock does not move). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await turn();
}

test('Authenticator - guesses sent in parallel from one address wait one after another, longer and longer', async (t) => {
  const authenticator = new Authenticator(await settings(), silentLogger());
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const guesses = ['bad-1', 'bad-2', 'bad-3'].map((password) => tracked(authenticator.login(attempt(password))));
  assert.equal((await guesses[0]!.promise).ok, false, 'the first guess is answered at once');
  await settle();
  assert.equal(guesses[1]!.result, null, 'the second waits');
  assert.equal(guesses[2]!.result, null, 'the third waits');
  t.mock.timers.tick(FAILED_LOGIN_BASE_DELAY_MS);
  assert.equal((await guesses[1]!.promise).ok, false, 'the second is answered after 250 ms');
  await settle();
  assert.equal(guesses[2]!.result, null, 'the third still waits');
  t.mock.timers.tick(FAILED_LOGIN_BASE_DELAY_MS);
  assert.equal((await guesses[2]!.promise).ok, false, 'the third is answered after 500 ms');
});

test('Authenticator - a success clears the address; logins that check no password are not slowed by each other', async (t) => {
  const authenticator = new Authenticator(await settings(), silentLogger());
  t.mock.timers.enable({ apis: ['setTimeout'] });
  assert.equal((await authenticator.login(attempt('bad'))).ok, false);
  const good = tracked(authenticator.login(attempt(PASSWORD)));
  t.mock.timers.tick(FAILED_LOGIN_BASE_DELAY_MS);
  assert.equal((await good.promise).ok, true);
  assert.equal((await authenticator.login(attempt(PASSWORD))).ok, true, 'answered at once after a success');
  const open = new Authenticator(undefined, silentLogger());
  const results = await Promise.all(Array.from({ length: 5 }, () => open.login(attempt('', { username: undefined }))));
  assert.ok(results.every((result) => result.ok), 'without auth, five parallel connections are all let in at once');
});

test('Authenticator - the password of a client that hung up while it waited is not checked', async (t) => {
  const authenticator = new Authenticator(await settings(), silentLogger());
  t.mock.timers.enable({ apis: ['setTimeout'] });
  assert.equal((await authenticator.login(attempt('bad'))).ok, false);
  let closed = false;
  const late = tracked(authenticator.login(attempt(PASSWORD, { connectionClosed: () => closed })));
  closed = true;
  t.mock.timers.tick(FAILED_LOGIN_BASE_DELAY_MS);
  const result = await late.promise;
  assert.deepEqual(result.ok ? null : result.reason, 'the client hung up before its password was checked');
});

test('Authenticator - a login waiting out its delay does not keep the process alive', async () => {
  const authenticator = new Authenticator(await settings(), silentLogger());
  assert.equal((await authenticator.login(attempt('bad'))).ok, false);
  const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
  const keepAlive = setTimeout(() => {}, 10_000); // what a running bridge's listeners do
  try {
    const before = timers();
    const waiting = authenticator.login(attempt('bad-again'));
    assert.equal(timers(), before, 'its timer is unref()ed');
    assert.equal((await waiting).ok, false);
  } finally {
    clearTimeout(keepAlive);
  }
});

test('Authenticator - auth.clientIds: a good password with a client id the patterns do not allow gets 2; an id the server assigned is not checked', async () => {
  const authenticator = new Authenticator({ ...(await settings()), clientIds: ['{username}-*'] }, silentLogger());
  assert.deepEqual(await authenticator.login(attempt(PASSWORD, { clientId: 'sensor-1-a' })), { ok: true, username: 'sensor-1' });
  const refused = await authenticator.login(attempt(PASSWORD, { clientId: 'sensor-2-a' }));
  assert.equal(refused.ok, false);
  assert.equal(!refused.ok && refused.returnCode, 2);
  assert.deepEqual(await authenticator.login(attempt(PASSWORD, { clientId: 'aedes_0f3c', clientIdAssigned: true })), { ok: true, username: 'sensor-1' });
  assert.equal((await authenticator.login(attempt('wrong', { clientId: 'sensor-2-a' }))).ok, false, 'a bad password is refused as before');
});
