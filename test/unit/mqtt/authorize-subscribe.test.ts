import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate } from 'node:timers/promises';
import type { Client, Subscription } from 'aedes';
import { createAuthorizeSubscribe, type SubscribeLimits } from '../../../src/mqtt/hooks/authorize-subscribe.js';
import type { LimitName } from '../../../src/mqtt/limits.js';
import type { AccessPolicy } from '../../../src/mqtt/access.js';
import { Acl } from '../../../src/auth/acl.js';

interface FakeClient {
  id: string;
  subscriptions: Record<string, unknown>;
}

function fakeClient(id: string, existing: string[] = []): FakeClient {
  // aedes keeps a client's subscriptions in an object without a prototype.
  const subscriptions = Object.create(null) as Record<string, unknown>;
  for (const filter of existing) subscriptions[filter] = { qos: 1 };
  return { id, subscriptions };
}


interface Outcome {
  error: Error | null;
  /** The filter granted, or null when refused. */
  granted: string | null;
  calls: number;
}

function setup(overrides: Partial<SubscribeLimits> = {}) {
  const limits: SubscribeLimits = { maxTopicBytes: 50, maxTopicLevels: 4, maxSubscriptionsPerClient: 3, ...overrides };
  const refusals: Array<{ limit: LimitName; clientId: string; filter: string }> = [];
  const authorize = createAuthorizeSubscribe(limits, (limit, client, filter) => refusals.push({ limit, clientId: client.id, filter }));
  /** Calls the hook and returns what its callback got (the hook calls back synchronously). */
  function ask(client: FakeClient, topic: string, qos: 0 | 1 | 2 = 1): Outcome {
    const outcome: Outcome = { error: null, granted: null, calls: 0 };
    const subscription: Subscription = { topic, qos };
    authorize(client as unknown as Client, subscription, (error, granted) => {
      outcome.calls++;
      outcome.error = error;
      if (granted) {
        assert.equal(granted, subscription, 'the subscription is passed on as it came');
        outcome.granted = granted.topic;
      } else {
        assert.equal(granted, null, 'a refusal calls back with null');
        outcome.granted = null;
      }
    });
    assert.equal(outcome.calls, 1, 'the callback is called exactly once, synchronously');
    return outcome;
  }
  /** What aedes does for a granted filter of a clean session: stores it on the client. */
  function store(client: FakeClient, topic: string): void {
    client.subscriptions[topic] = { qos: 1 };
  }
  return { ask, store, refusals };
}

test('authorizeSubscribe - a filter within the limits is granted', () => {
  const { ask, refusals } = setup();
  const outcome = ask(fakeClient('c'), 'devices/+/telemetry');
  assert.deepEqual(outcome, { error: null, granted: 'devices/+/telemetry', calls: 1 });
  assert.deepEqual(refusals, []);
});

test('authorizeSubscribe - a filter over the byte limit gets callback(null, null) and a topic_length refusal', () => {
  const { ask, refusals } = setup({ maxTopicBytes: 5 });
  assert.deepEqual(ask(fakeClient('c'), 'abcde'), { error: null, granted: 'abcde', calls: 1 });
  assert.deepEqual(ask(fakeClient('c'), 'abcdef'), { error: null, granted: null, calls: 1 });
  // Counted in UTF-8: é€ is 2 characters but 5 bytes, é€a 6 bytes.
  assert.deepEqual(ask(fakeClient('c'), 'é€'), { error: null, granted: 'é€', calls: 1 });
  assert.deepEqual(ask(fakeClient('c'), 'é€a'), { error: null, granted: null, calls: 1 });
  assert.deepEqual(refusals, [
    { limit: 'topic_length', clientId: 'c', filter: 'abcdef' },
    { limit: 'topic_length', clientId: 'c', filter: 'é€a' },
  ]);
});

test('authorizeSubscribe - a filter over the level limit gets callback(null, null) and a topic_levels refusal', () => {
  const { ask, refusals } = setup({ maxTopicLevels: 3 });
  assert.equal(ask(fakeClient('c'), 'a/b/#').granted, 'a/b/#');
  assert.deepEqual(ask(fakeClient('d'), 'a/+/c/#'), { error: null, granted: null, calls: 1 });
  assert.deepEqual(ask(fakeClient('d'), 'a//c/'), { error: null, granted: null, calls: 1 });
  assert.deepEqual(refusals, [
    { limit: 'topic_levels', clientId: 'd', filter: 'a/+/c/#' },
    { limit: 'topic_levels', clientId: 'd', filter: 'a//c/' },
  ]);
});

test("authorizeSubscribe - an existing subscription over the topic limits is still refused (the limits apply to every filter)", () => {
  const { ask, refusals } = setup({ maxTopicLevels: 2 });
  const client = fakeClient('c', ['a/b/c']);
  assert.equal(ask(client, 'a/b/c').granted, null);
  assert.deepEqual(refusals, [{ limit: 'topic_levels', clientId: 'c', filter: 'a/b/c' }]);
});

test("authorizeSubscribe - the subscription limit counts the client's existing subscriptions", () => {
  const { ask, refusals } = setup({ maxSubscriptionsPerClient: 3 });
  const client = fakeClient('c', ['x', 'y']);
  assert.equal(ask(client, 'z').granted, 'z', 'the third fits');
  const full = fakeClient('d', ['x', 'y', 'z']);
  assert.deepEqual(ask(full, 'w'), { error: null, granted: null, calls: 1 });
  assert.deepEqual(refusals, [{ limit: 'subscriptions', clientId: 'd', filter: 'w' }]);
});

test('authorizeSubscribe - re-subscribing an existing filter is always allowed, even at the limit', () => {
  const { ask, refusals } = setup({ maxSubscriptionsPerClient: 2 });
  const client = fakeClient('c', ['x', 'y']);
  assert.equal(ask(client, 'x', 0).granted, 'x');
  assert.equal(ask(client, 'y', 2).granted, 'y');
  assert.equal(ask(client, 'x', 1).granted, 'x');
  assert.equal(ask(client, 'z').granted, null);
  assert.deepEqual(refusals, [{ limit: 'subscriptions', clientId: 'c', filter: 'z' }]);
});

test('authorizeSubscribe - filters authorized in the same tick (one SUBSCRIBE) count against the limit', () => {
  const { ask, refusals } = setup({ maxSubscriptionsPerClient: 3 });
  const client = fakeClient('c', ['old']);
  // aedes authorizes a SUBSCRIBE's filters in parallel, before any of them is stored.
  assert.equal(ask(client, 'a').granted, 'a');
  assert.equal(ask(client, 'b').granted, 'b');
  assert.equal(ask(client, 'c').granted, null, 'old + a + b: the limit of 3 is reached');
  assert.equal(ask(client, 'd').granted, null);
  assert.deepEqual(
    refusals.map((r) => r.filter),
    ['c', 'd'],
  );
  assert.ok(refusals.every((r) => r.limit === 'subscriptions'));
});

test('authorizeSubscribe - the same new filter twice in one tick is counted once', () => {
  const { ask, refusals } = setup({ maxSubscriptionsPerClient: 2 });
  const client = fakeClient('c', ['old']);
  assert.equal(ask(client, 'a').granted, 'a');
  assert.equal(ask(client, 'a').granted, 'a', 'already being granted: not a new subscription');
  assert.equal(ask(client, 'b').granted, null);
  assert.deepEqual(refusals, [{ limit: 'subscriptions', clientId: 'c', filter: 'b' }]);
});

test('authorizeSubscribe - the same-tick count is per client', () => {
  const { ask, refusals } = setup({ maxSubscriptionsPerClient: 2 });
  const one = fakeClient('one');
  const two = fakeClient('two');
  assert.equal(ask(one, 'a').granted, 'a');
  assert.equal(ask(one, 'b').granted, 'b');
  assert.equal(ask(two, 'a').granted, 'a');
  assert.equal(ask(two, 'b').granted, 'b');
  assert.equal(ask(one, 'c').granted, null);
  assert.equal(ask(two, 'c').granted, null);
  assert.deepEqual(refusals, [
    { limit: 'subscriptions', clientId: 'one', filter: 'c' },
    { limit: 'subscriptions', clientId: 'two', filter: 'c' },
  ]);
});

test('authorizeSubscribe - a refused filter is not counted against the limit', () => {
  const { ask } = setup({ maxSubscriptionsPerClient: 2, maxTopicLevels: 2 });
  const client = fakeClient('c');
  assert.equal(ask(client, 'a/b/c').granted, null, 'too many levels');
  assert.equal(ask(client, 'x').granted, 'x');
  assert.equal(ask(client, 'y').granted, 'y');
});

test('authorizeSubscribe - after a setImmediate the pending set is cleared: only stored subscriptions count', async () => {
  const { ask, refusals } = setup({ maxSubscriptionsPerClient: 2 });
  const client = fakeClient('c');
  assert.equal(ask(client, 'a').granted, 'a');
  assert.equal(ask(client, 'b').granted, 'b');
  assert.equal(ask(client, 'c').granted, null);
  await setImmediate();
  // None of them was stored (say the client went away): the client has room for two again.
  assert.equal(ask(client, 'c').granted, 'c');
  assert.equal(ask(client, 'd').granted, 'd');
  assert.equal(ask(client, 'e').granted, null);
  assert.deepEqual(
    refusals.map((r) => r.filter),
    ['c', 'e'],
  );
});

test('authorizeSubscribe - a later SUBSCRIBE counts what the earlier one stored', async () => {
  const { ask, store } = setup({ maxSubscriptionsPerClient: 2 });
  const client = fakeClient('c');
  assert.equal(ask(client, 'a').granted, 'a');
  await setImmediate();
  store(client, 'a');
  assert.equal(ask(client, 'b').granted, 'b');
  await setImmediate();
  store(client, 'b');
  assert.equal(ask(client, 'c').granted, null);
  assert.equal(ask(client, 'a').granted, 'a', 'a re-subscription still goes');
});

test('authorizeSubscribe - a filter granted and stored within the same tick is not counted twice', () => {
  // For a clean session aedes authorizes, then stores the filter on client.subscriptions,
  // synchronously, before it authorizes the next filter of the same SUBSCRIBE
  // (lib/handlers/subscribe.js: runFall([authorize, storeSubscriptions, addSubs]) with
  // storeSubscriptions calling back at once when client.clean). So SUBSCRIBE ['a', 'b'] from a
  // client with no subscriptions and a limit of 2 sees 'a' both in subscriptions and in the
  // pending set when 'b' is authorized.
  const { ask, store, refusals } = setup({ maxSubscriptionsPerClient: 2 });
  const client = fakeClient('c');
  assert.equal(ask(client, 'a').granted, 'a');
  store(client, 'a');
  assert.equal(ask(client, 'b').granted, 'b', 'the client has one subscription and a limit of 2');
  assert.deepEqual(refusals, []);
});

test('authorizeSubscribe - with an ACL, a filter that only overlaps a deny is granted and one inside it refused and reported; $bridge/ is nobody\'s', () => {
  // The issue 11 example: before, "#" and "+/+" were refused because they overlap test/nosubscribe.
  const acl = new Acl([
    { deny: 'subscribe', topic: 'test/nosubscribe' },
    { allow: ['publish', 'subscribe'], topic: '#' },
  ]);
  const reported: string[] = [];
  const access: AccessPolicy = {
    enforced: true,
    canPublish: (identity, topic) => acl.canPublish(identity, topic),
    canSubscribe: (identity, filter) => acl.canSubscribe(identity, filter),
    onDeniedPublish: 'disconnect',
    denied: (action, clientId, topic) => reported.push(`${action} ${clientId} ${topic}`),
  };
  const limits: SubscribeLimits = { maxTopicBytes: 50, maxTopicLevels: 4, maxSubscriptionsPerClient: 10 };
  const authorize = createAuthorizeSubscribe(limits, () => assert.fail('no limit is reached'), access, () => undefined);
  const answers = ['#', '+/+', 'test/#', 'test/nosubscribe', '$bridge/#'].map((topic) => {
    let granted: string | null | undefined;
    authorize(fakeClient('anon-1') as unknown as Client, { topic, qos: 1 }, (_error, subscription) => {
      granted = subscription ? subscription.topic : null;
    });
    return granted;
  });
  assert.deepEqual(answers, ['#', '+/+', 'test/#', null, null]);
  assert.deepEqual(reported, ['subscribe anon-1 test/nosubscribe'], 'the ACL refusal is counted and logged; $bridge/ is refused before the ACL is asked');
});
