import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientIdPolicy } from '../../../src/auth/client-ids.js';

test('client ids - {username} is the user\'s own name; * any run of characters, none included', () => {
  const policy = new ClientIdPolicy(['{username}', '{username}-*']);
  assert.equal(policy.allows('alice', 'alice'), true);
  assert.equal(policy.allows('alice', 'alice-'), true);
  assert.equal(policy.allows('alice', 'alice-sensor-7'), true);
  assert.equal(policy.allows('alice', 'bob'), false);
  assert.equal(policy.allows('alice', 'bob-dev'), false);
  assert.equal(policy.allows('alice', 'alicex'), false, 'no wildcard after {username}');
  assert.equal(policy.allows('alice', 'xalice'), false);
});

test('client ids - an anonymous client matches no pattern that names {username}, but literal patterns apply to it', () => {
  const policy = new ClientIdPolicy(['{username}', 'kiosk-*']);
  assert.equal(policy.allows(undefined, ''), false);
  assert.equal(policy.allows(undefined, 'kiosk-3'), true);
  assert.equal(policy.allows('', ''), false, 'an empty username is no username');
});

test('client ids - an entry limited to users applies to those only', () => {
  const policy = new ClientIdPolicy(['{username}', { pattern: '*', users: ['admin'] }]);
  assert.equal(policy.allows('admin', 'anything-at-all'), true);
  assert.equal(policy.allows('alice', 'anything-at-all'), false);
  assert.equal(policy.allows('alice', 'alice'), true);
});

test('client ids - wildcards in the middle, and characters that mean something in regular expressions are literal', () => {
  const policy = new ClientIdPolicy(['site.*/{username}/*.dev']);
  assert.equal(policy.allows('a+b', 'site.1/a+b/x.dev'), true);
  assert.equal(policy.allows('a+b', 'site.1/a+b/.dev'), true);
  assert.equal(policy.allows('a+b', 'siteX1/a+b/x.dev'), false, '. is no wildcard');
  assert.equal(policy.allows('a+b', 'site.1/aab/x.dev'), false, '+ is no wildcard');
  assert.equal(policy.allows('a+b', 'site.1/a+b/x.devX'), false);
  assert.equal(new ClientIdPolicy(['a*a']).allows(undefined, 'a'), false, 'the runs around a wildcard do not overlap');
  assert.equal(new ClientIdPolicy(['a*a']).allows(undefined, 'aa'), true);
});
