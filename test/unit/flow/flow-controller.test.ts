import assert from 'node:assert/strict';
import { test } from 'node:test';
// Awaiting it lets the microtask that drains the queue on `open` (and anything else pending) run.
import { setImmediate as flush } from 'node:timers/promises';
import { waitFor } from '../../helpers/amqp.js';
import { FlowController, type FlowOptions, type FlowState, type RefusalReason, type Release } from '../../../src/flow/flow-controller.js';
import { silentLogger } from '../../../src/observability/logger.js';
import { Fifo } from '../../../src/util/fifo.js';

const START = 1_700_000_000_000;


interface Harness {
  flow: FlowController;
  /** `admit:<id>` and `refuse:<id>:<reason>`, in the order they happened. */
  events: string[];
  /** Every `state` event as `next<-previous`. */
  transitions: string[];
  submit(id: string, clientId: string, bytes: number, qos?: 0 | 1 | 2, receivedAt?: number): void;
  release(id: string): void;
  advance(ms: number): void;
  clock(): number;
}

function harness(overrides: Partial<FlowOptions> = {}, useFakeClock = true): Harness {
  let now = START;
  const options: FlowOptions = {
    maxPendingMessages: 100,
    maxPendingBytes: 10_000,
    maxInflightPerClient: 50,
    qos0Overflow: 'drop',
    publishTimeoutMs: 60_000,
    logger: silentLogger(),
    ...(useFakeClock ? { now: () => now } : {}),
    ...overrides,
  };
  const flow = new FlowController(options);
  const events: string[] = [];
  const transitions: string[] = [];
  const releases = new Map<string, Release>();
  flow.on('state', (next: FlowState, previous: FlowState) => transitions.push(`${next}<-${previous}`));
  const clock = () => (useFakeClock ? now : Date.now());
  return {
    flow,
    events,
    transitions,
    submit(id, clientId, bytes, qos = 1, receivedAt = clock()) {
      flow.admit({
        clientId,
        bytes,
        qos,
        receivedAt,
        admitted(release) {
          assert.equal(typeof release, 'function');
          releases.set(id, release);
          events.push(`admit:${id}`);
        },
        refused: (reason: RefusalReason) => events.push(`refuse:${id}:${reason}`),
      });
    },
    release(id) {
      const release = releases.get(id);
      assert.ok(release, `${id} was admitted`);
      release();
    },
    advance(ms) {
      now += ms;
    },
    clock,
  };
}

/**
 * A harness already connected (state `open`), after the drain queued by that transition has run,
 * so that no pending drain hides what a test checks.
 */
async function openHarness(overrides: Partial<FlowOptions> = {}): Promise<Harness> {
  const h = harness(overrides);
  h.flow.setBrokerState('connected');
  assert.equal(h.flow.state, 'open');
  await flush();
  h.transitions.length = 0;
  return h;
}

test('FlowController - starts disconnected and admits nothing until the broker is connected', async () => {
  const h = harness();
  assert.equal(h.flow.state, 'disconnected');
  h.submit('a', 'c1', 10, 1);
  h.submit('b', 'c1', 10, 2);
  await flush();
  assert.deepEqual(h.events, []);
  assert.equal(h.flow.waiting, 2);
  assert.equal(h.flow.pendingMessages, 0);

  h.flow.setBrokerState('connecting');
  await flush();
  assert.equal(h.flow.state, 'disconnected');
  assert.deepEqual(h.transitions, [], 'connecting is still disconnected: no state event');
  assert.deepEqual(h.events, []);

  h.flow.setBrokerState('connected');
  assert.equal(h.flow.state, 'open');
  assert.deepEqual(h.transitions, ['open<-disconnected']);
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b']);
  assert.equal(h.flow.waiting, 0);
  assert.equal(h.flow.pendingMessages, 2);
  assert.equal(h.flow.pendingBytes, 20);
  h.flow.close();
});

test('FlowController - in open state a publish is admitted at once (synchronously) with a release function', async () => {
  const h = await openHarness();
  let release: unknown = null;
  let refused: RefusalReason | null = null;
  h.flow.admit({
    clientId: 'c1',
    bytes: 42,
    qos: 1,
    receivedAt: START,
    admitted(r) {
      release = r;
    },
    refused(reason) {
      refused = reason;
    },
  });
  assert.equal(typeof release, 'function');
  assert.equal(refused, null);
  assert.equal(h.flow.pendingMessages, 1);
  assert.equal(h.flow.pendingBytes, 42);
  assert.equal(h.flow.waiting, 0);
  // QoS 0 and 2 go at once too while open.
  h.submit('q0', 'c2', 1, 0);
  h.submit('q2', 'c3', 1, 2);
  assert.deepEqual(h.events, ['admit:q0', 'admit:q2']);
  h.flow.close();
});

test('FlowController - pendingMessages, pendingBytes and peaks are accounted; release is idempotent', async () => {
  const h = await openHarness();
  assert.equal(h.flow.pendingMessages, 0);
  assert.equal(h.flow.pendingBytes, 0);
  assert.equal(h.flow.peakPendingBytes, 0);
  assert.equal(h.flow.peakPendingMessages, 0);

  h.submit('a', 'c1', 100);
  h.submit('b', 'c2', 250);
  h.submit('c', 'c1', 7);
  assert.equal(h.flow.pendingMessages, 3);
  assert.equal(h.flow.pendingBytes, 357);
  assert.equal(h.flow.peakPendingBytes, 357);
  assert.equal(h.flow.peakPendingMessages, 3);

  h.release('b');
  assert.equal(h.flow.pendingMessages, 2);
  assert.equal(h.flow.pendingBytes, 107);
  h.release('b');
  h.release('b');
  assert.equal(h.flow.pendingMessages, 2, 'a second release of the same publish changes nothing');
  assert.equal(h.flow.pendingBytes, 107);

  h.release('a');
  h.release('c');
  assert.equal(h.flow.pendingMessages, 0);
  assert.equal(h.flow.pendingBytes, 0);
  assert.equal(h.flow.peakPendingBytes, 357, 'peaks are kept');
  assert.equal(h.flow.peakPendingMessages, 3);

  h.submit('d', 'c1', 50);
  assert.equal(h.flow.pendingBytes, 50);
  assert.equal(h.flow.peakPendingBytes, 357);
  h.flow.close();
});

test('FlowController - throttled when pending messages reach maxPendingMessages, open again on release', async () => {
  const h = await openHarness({ maxPendingMessages: 2 });
  h.submit('a', 'c1', 10);
  assert.equal(h.flow.state, 'open');
  h.submit('b', 'c2', 10);
  assert.equal(h.flow.state, 'throttled');
  assert.deepEqual(h.transitions, ['throttled<-open']);

  h.submit('c', 'c3', 10);
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b'], 'the third waits');
  assert.equal(h.flow.waiting, 1);
  assert.equal(h.flow.pendingMessages, 2);

  h.release('a');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b', 'admit:c']);
  assert.equal(h.flow.state, 'throttled', 'full again with c');
  assert.deepEqual(h.transitions, ['throttled<-open', 'open<-throttled', 'throttled<-open']);

  h.release('b');
  h.release('c');
  assert.equal(h.flow.state, 'open');
  assert.equal(h.flow.pendingMessages, 0);
  h.flow.close();
});

test('FlowController - throttled when pending bytes reach maxPendingBytes, open again on release', async () => {
  const h = await openHarness({ maxPendingBytes: 300 });
  h.submit('a', 'c1', 200);
  assert.equal(h.flow.state, 'open');
  h.submit('b', 'c2', 99);
  assert.equal(h.flow.state, 'open', '299 < 300');
  h.submit('c', 'c3', 1);
  assert.equal(h.flow.state, 'throttled', '300 reaches the budget');
  assert.equal(h.flow.pendingBytes, 300);
  assert.deepEqual(h.events, ['admit:a', 'admit:b', 'admit:c'], 'a publish that exactly fills the budget is admitted');

  h.release('c');
  assert.equal(h.flow.state, 'open');
  assert.deepEqual(h.transitions, ['throttled<-open', 'open<-throttled']);
  h.flow.close();
});

test('FlowController - blocked on setBlocked(true), and blocked wins over throttled', async () => {
  const h = await openHarness({ maxPendingMessages: 1 });
  h.flow.setBlocked(true);
  assert.equal(h.flow.state, 'blocked');
  assert.deepEqual(h.transitions, ['blocked<-open']);
  h.flow.setBlocked(false);
  assert.equal(h.flow.state, 'open');

  h.submit('a', 'c1', 10);
  assert.equal(h.flow.state, 'throttled');
  h.flow.setBlocked(true);
  assert.equal(h.flow.state, 'blocked', 'blocked wins over a full budget');
  h.release('a');
  assert.equal(h.flow.state, 'blocked', 'a release does not unblock');
  h.flow.setBlocked(false);
  assert.equal(h.flow.state, 'open');
  assert.deepEqual(h.transitions, ['blocked<-open', 'open<-blocked', 'throttled<-open', 'blocked<-throttled', 'open<-blocked']);
  h.flow.close();
});

test('FlowController - blocked while the budget is still full goes back to throttled', async () => {
  const h = await openHarness({ maxPendingMessages: 1 });
  h.submit('a', 'c1', 10);
  h.flow.setBlocked(true);
  h.flow.setBlocked(false);
  assert.equal(h.flow.state, 'throttled');
  h.flow.close();
});

test('FlowController - disconnected whenever the broker is not connected, winning over blocked', async () => {
  const h = await openHarness();
  h.flow.setBlocked(true);
  assert.equal(h.flow.state, 'blocked');
  h.flow.setBrokerState('disconnected');
  assert.equal(h.flow.state, 'disconnected');
  h.flow.setBrokerState('connected');
  assert.equal(h.flow.state, 'blocked', 'still blocked after the reconnect');
  h.flow.setBlocked(false);
  h.flow.setBrokerState('connecting');
  assert.equal(h.flow.state, 'disconnected');
  h.flow.setBrokerState('connected');
  h.flow.setBrokerState('closed');
  assert.equal(h.flow.state, 'disconnected');
  assert.deepEqual(h.transitions, [
    'blocked<-open',
    'disconnected<-blocked',
    'blocked<-disconnected',
    'open<-blocked',
    'disconnected<-open',
    'open<-disconnected',
    'disconnected<-open',
  ]);
  h.flow.close();
});

test("FlowController - QoS 0 is refused with 'qos0_overflow' when not open and qos0Overflow is drop", async () => {
  const h = harness({ maxPendingMessages: 1, qos0Overflow: 'drop' });
  h.submit('d0', 'c1', 10, 0);
  assert.deepEqual(h.events, ['refuse:d0:qos0_overflow'], 'disconnected: refused synchronously');

  h.flow.setBrokerState('connected');
  h.submit('a', 'c1', 10, 1);
  assert.equal(h.flow.state, 'throttled');
  h.submit('t0', 'c2', 10, 0);
  assert.deepEqual(h.events.slice(1), ['admit:a', 'refuse:t0:qos0_overflow']);

  h.release('a');
  h.flow.setBlocked(true);
  h.submit('b0', 'c3', 10, 0);
  assert.deepEqual(h.events.slice(3), ['refuse:b0:qos0_overflow']);
  assert.equal(h.flow.waiting, 0);
  assert.equal(h.flow.pendingMessages, 0);

  h.flow.setBlocked(false);
  await flush();
  assert.equal(h.events.length, 4, 'nothing dropped comes back later');
  h.flow.close();
});

test("FlowController - QoS 0 waits when not open and qos0Overflow is block", async () => {
  const h = harness({ qos0Overflow: 'block' });
  h.submit('a', 'c1', 10, 0);
  h.submit('b', 'c2', 10, 0);
  assert.deepEqual(h.events, []);
  assert.equal(h.flow.waiting, 2);
  h.flow.setBrokerState('connected');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b']);
  h.flow.setBlocked(true);
  h.submit('c', 'c1', 10, 0);
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b']);
  h.flow.setBlocked(false);
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b', 'admit:c']);
  h.flow.close();
});

test('FlowController - QoS 1/2 wait when not open and are admitted in arrival order when it opens', async () => {
  const h = harness();
  const seen: Array<[FlowState, FlowState]> = [];
  h.flow.on('state', (next, previous) => seen.push([next, previous]));
  h.submit('1', 'c1', 10, 1);
  h.submit('2', 'c2', 20, 2);
  h.submit('3', 'c3', 30, 1);
  h.submit('4', 'c1', 40, 2);
  h.submit('5', 'c2', 50, 1);
  assert.equal(h.flow.waiting, 5);
  h.flow.setBrokerState('connected');
  assert.deepEqual(seen, [['open', 'disconnected']]);
  await flush();
  assert.deepEqual(h.events, ['admit:1', 'admit:2', 'admit:3', 'admit:4', 'admit:5']);
  assert.equal(h.flow.waiting, 0);
  assert.equal(h.flow.pendingBytes, 150);
  h.flow.close();
});

test('FlowController - while throttled, waiting publishes go in arrival order as budget frees up', async () => {
  const h = await openHarness({ maxPendingMessages: 2 });
  h.submit('a', 'c1', 1);
  h.submit('b', 'c2', 1);
  h.submit('c', 'c3', 1);
  h.submit('d', 'c4', 1);
  h.submit('e', 'c5', 1);
  assert.equal(h.flow.waiting, 3);
  h.release('b');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b', 'admit:c']);
  h.release('a');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b', 'admit:c', 'admit:d']);
  h.release('c');
  h.release('d');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b', 'admit:c', 'admit:d', 'admit:e']);
  assert.equal(h.flow.waiting, 0);
  h.flow.close();
});

test("FlowController - per-client limit: a client's publishes beyond maxInflightPerClient wait while another client's go through (other client first)", async () => {
  const h = await openHarness({ maxInflightPerClient: 2 });
  h.submit('a1', 'A', 10);
  h.submit('b1', 'B', 10);
  h.submit('a2', 'A', 10);
  h.submit('a3', 'A', 10);
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1', 'admit:a2']);
  assert.equal(h.flow.state, 'open', 'the per-client limit does not throttle the whole gateway');
  assert.equal(h.flow.waiting, 1);
  h.release('b1');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1', 'admit:a2'], "B's release does not let A past its limit");
  h.release('a1');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1', 'admit:a2', 'admit:a3']);
  h.flow.close();
});

test('FlowController - per-client limit: a client at its limit goes on again once a quarter of the limit is released, all together', async () => {
  const h = await openHarness({ maxInflightPerClient: 8 });
  for (let i = 1; i <= 12; i++) h.submit(`a${i}`, 'A', 10);
  await flush();
  const first = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8'].map((id) => `admit:${id}`);
  assert.deepEqual(h.events, first);
  h.release('a1');
  await flush();
  assert.deepEqual(h.events, first, 'one place freed: the client waits for more');
  assert.equal(h.flow.waiting, 4);
  h.release('a2');
  await flush();
  assert.deepEqual(h.events, [...first, 'admit:a9', 'admit:a10'], 'a quarter freed (8 - 2 = 6 in flight): both places are filled at once');
  h.release('a3');
  h.release('a4');
  await flush();
  assert.deepEqual(h.events, [...first, 'admit:a9', 'admit:a10', 'admit:a11', 'admit:a12']);
  assert.equal(h.flow.waiting, 0);
  // Another client is not held back by A's batching: B is under its limit.
  h.submit('b1', 'B', 10);
  await flush();
  assert.equal(h.events.at(-1), 'admit:b1');
  h.flow.close();
});

test('FlowController - per-client limit: a client at its limit whose in-flight publishes all settle at once still goes on', async () => {
  const h = await openHarness({ maxInflightPerClient: 4 });
  for (let i = 1; i <= 6; i++) h.submit(`a${i}`, 'A', 10);
  await flush();
  assert.equal(h.flow.waiting, 2);
  for (const id of ['a1', 'a2', 'a3', 'a4']) h.release(id);
  await flush();
  assert.deepEqual(h.events.slice(4), ['admit:a5', 'admit:a6']);
  assert.equal(h.flow.waiting, 0);
  h.flow.close();
});

test("FlowController - per-client limit: another client's publish goes through while a client waits at its limit", async () => {
  // A is at its in-flight limit and has a publish waiting; the gateway is `open` and B has
  // nothing in flight, so B must not wait for A's confirms.
  const h = await openHarness({ maxInflightPerClient: 2 });
  h.submit('a1', 'A', 10);
  h.submit('a2', 'A', 10);
  h.submit('a3', 'A', 10);
  assert.equal(h.flow.state, 'open');
  assert.equal(h.flow.waiting, 1);
  h.submit('b1', 'B', 10);
  h.submit('b2', 'B', 10);
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:a2', 'admit:b1', 'admit:b2'], 'B goes through while A waits at its limit');
  assert.equal(h.flow.waiting, 1);
  h.flow.close();
});

test('FlowController - per-client limit: QoS 0 of another client is not dropped while a client waits at its limit', async () => {
  const h = await openHarness({ maxInflightPerClient: 1, qos0Overflow: 'drop' });
  h.submit('a1', 'A', 10, 1);
  h.submit('a2', 'A', 10, 1);
  assert.equal(h.flow.state, 'open');
  h.submit('b0', 'B', 10, 0);
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b0'], 'the gateway is open and B is under its limit');
  h.flow.close();
});

test("FlowController - a client's later publishes never overtake its earlier ones", async () => {
  const h = await openHarness({ maxInflightPerClient: 1 });
  h.submit('a1', 'A', 10);
  h.submit('a2', 'A', 500);
  h.submit('a3', 'A', 1);
  await flush();
  assert.deepEqual(h.events, ['admit:a1']);
  h.release('a1');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:a2']);
  h.release('a2');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:a2', 'admit:a3']);
  h.flow.close();
});

test("FlowController - a client's small publish does not overtake its earlier one that does not fit the byte budget", async () => {
  const h = await openHarness({ maxPendingBytes: 1000, maxInflightPerClient: 10 });
  h.submit('a1', 'A', 600);
  h.submit('b1', 'B', 100);
  h.submit('a2', 'A', 500); // 700 + 500 > 1000: waits
  h.submit('a3', 'A', 10); // would fit, but must not overtake a2
  await flush();
  assert.equal(h.flow.state, 'open');
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1']);
  h.release('b1');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1'], 'a2 still does not fit (1100 > 1000), so a3 waits behind it');
  assert.equal(h.flow.waiting, 2);
  h.release('a1');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1', 'admit:a2', 'admit:a3']);
  assert.equal(h.flow.pendingBytes, 510);
  h.flow.close();
});

test('FlowController - a single message larger than maxPendingBytes is admitted when nothing else is pending', async () => {
  const h = await openHarness({ maxPendingBytes: 100 });
  h.submit('big', 'c1', 500);
  assert.deepEqual(h.events, ['admit:big']);
  assert.equal(h.flow.pendingBytes, 500);
  assert.equal(h.flow.peakPendingBytes, 500);
  assert.equal(h.flow.state, 'throttled');
  h.submit('small', 'c2', 1);
  await flush();
  assert.deepEqual(h.events, ['admit:big'], 'nothing goes alongside it');
  h.release('big');
  await flush();
  assert.deepEqual(h.events, ['admit:big', 'admit:small']);
  assert.equal(h.flow.state, 'open');
  h.flow.close();
});

test('FlowController - an oversized message waits until nothing else is pending, then goes alone', async () => {
  const h = await openHarness({ maxPendingBytes: 100 });
  h.submit('s1', 'c1', 10);
  h.submit('big', 'c2', 500);
  await flush();
  assert.deepEqual(h.events, ['admit:s1']);
  assert.equal(h.flow.waiting, 1);
  h.release('s1');
  await flush();
  assert.deepEqual(h.events, ['admit:s1', 'admit:big']);
  assert.equal(h.flow.pendingBytes, 500);
  h.flow.close();
});

test("FlowController - waiting publishes older than publishTimeoutMs are refused with 'timeout' (real clock)", async () => {
  const h = harness({ publishTimeoutMs: 30 }, false);
  h.submit('a', 'c1', 10, 1);
  h.submit('b', 'c2', 10, 2);
  h.submit('q0', 'c3', 10, 0); // dropped at once: disconnected, qos0Overflow drop
  assert.deepEqual(h.events, ['refuse:q0:qos0_overflow']);
  assert.equal(h.flow.waiting, 2);
  await waitFor(() => h.events.length === 3, 'both waiting publishes to time out', 2_000);
  assert.deepEqual(h.events, ['refuse:q0:qos0_overflow', 'refuse:a:timeout', 'refuse:b:timeout']);
  assert.equal(h.flow.waiting, 0);
  h.flow.setBrokerState('connected');
  await flush();
  assert.equal(h.events.length, 3, 'a refused publish is never admitted afterwards');
  assert.equal(h.flow.pendingMessages, 0);
  h.flow.close();
});

test('FlowController - the timeout counts from receivedAt, and only waiting publishes that are old enough are refused', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const h = harness({ publishTimeoutMs: 30 });
  h.submit('old', 'c1', 10, 1, START);
  h.advance(100);
  h.submit('fresh', 'c2', 10, 1, START + 100);
  t.mock.timers.tick(29);
  assert.deepEqual(h.events, [], 'the sweep is due 30 ms after the oldest arrived');
  t.mock.timers.tick(1);
  assert.deepEqual(h.events, ['refuse:old:timeout']);
  assert.equal(h.flow.waiting, 1);
  h.flow.setBrokerState('connected');
  await flush();
  assert.deepEqual(h.events, ['refuse:old:timeout', 'admit:fresh']);
  h.flow.close();
});

test('FlowController - an already-old publish that has to wait is refused on the next sweep', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const h = harness({ publishTimeoutMs: 30 });
  h.submit('late', 'c1', 10, 1, START - 1_000);
  assert.deepEqual(h.events, [], 'refused by the sweep, not while admitting');
  t.mock.timers.tick(0);
  assert.deepEqual(h.events, ['refuse:late:timeout']);
  h.flow.close();
});

test("FlowController - close() refuses waiting publishes with 'shutdown', and later admits too", async () => {
  const h = await openHarness({ maxPendingMessages: 1, qos0Overflow: 'block' });
  h.submit('a', 'c1', 10, 1);
  h.submit('b', 'c2', 10, 2);
  h.submit('c', 'c3', 10, 0);
  assert.equal(h.flow.waiting, 2);
  h.flow.close();
  assert.deepEqual(h.events, ['admit:a', 'refuse:b:shutdown', 'refuse:c:shutdown']);
  assert.equal(h.flow.waiting, 0);
  h.submit('d', 'c1', 10, 1);
  h.submit('e', 'c1', 10, 0);
  assert.deepEqual(h.events.slice(3), ['refuse:d:shutdown', 'refuse:e:shutdown']);
  // Releasing what was admitted before the close still works and admits nothing.
  h.release('a');
  await flush();
  assert.equal(h.flow.pendingMessages, 0);
  assert.equal(h.events.length, 5);
});

test('FlowController - close() while open refuses new publishes with shutdown', async () => {
  const h = await openHarness();
  h.flow.close();
  h.submit('a', 'c1', 10, 1);
  assert.deepEqual(h.events, ['refuse:a:shutdown']);
  assert.equal(h.flow.pendingMessages, 0);
});

test('FlowController - disconnectedForMs() counts from the start or the last disconnect, 0 while connected', () => {
  const h = harness();
  assert.equal(h.flow.disconnectedForMs(), 0);
  h.advance(500);
  assert.equal(h.flow.disconnectedForMs(), 500, 'disconnected since construction');
  h.flow.setBrokerState('connecting');
  h.advance(250);
  assert.equal(h.flow.disconnectedForMs(), 750, 'connecting does not restart the count');
  h.flow.setBrokerState('connected');
  assert.equal(h.flow.disconnectedForMs(), 0);
  h.advance(1_000);
  assert.equal(h.flow.disconnectedForMs(), 0);
  h.flow.setBlocked(true);
  assert.equal(h.flow.disconnectedForMs(), 0, 'blocked is not disconnected');
  h.flow.setBrokerState('disconnected');
  assert.equal(h.flow.disconnectedForMs(), 0);
  h.advance(300);
  assert.equal(h.flow.disconnectedForMs(), 300);
  h.flow.setBrokerState('connecting');
  h.advance(20);
  assert.equal(h.flow.disconnectedForMs(), 320);
  h.flow.close();
});

test('FlowController - new publishes wait behind already waiting ones when it opens again', async () => {
  const h = harness();
  h.submit('w1', 'c1', 10);
  h.submit('w2', 'c2', 10);
  h.flow.setBrokerState('connected');
  // Before the queued drain runs, new publishes arrive: they must go behind w1 and w2.
  h.submit('n1', 'c3', 10);
  h.submit('n2', 'c1', 10);
  await flush();
  assert.deepEqual(h.events, ['admit:w1', 'admit:w2', 'admit:n1', 'admit:n2']);
  h.flow.close();
});

test('FlowController - after unblocking, waiting QoS 1 go before newer publishes', async () => {
  const h = await openHarness({ qos0Overflow: 'drop' });
  h.flow.setBlocked(true);
  h.submit('w1', 'c1', 10, 1);
  h.submit('w2', 'c2', 10, 2);
  h.flow.setBlocked(false);
  h.submit('n1', 'c3', 10, 1);
  await flush();
  assert.deepEqual(h.events, ['admit:w1', 'admit:w2', 'admit:n1']);
  h.flow.close();
});

test('FlowController - after a throttle, waiting publishes go before newer ones', async () => {
  const h = await openHarness({ maxPendingMessages: 1 });
  h.submit('a', 'c1', 10);
  h.submit('w', 'c2', 10);
  h.release('a');
  h.submit('n', 'c3', 10);
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:w'], 'w takes the freed slot, n waits');
  h.release('w');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:w', 'admit:n']);
  h.flow.close();
});

test('FlowController - a throttle reached while draining stops the drain', async () => {
  const h = harness({ maxPendingMessages: 2 });
  for (const id of ['1', '2', '3', '4']) h.submit(id, `c${id}`, 10);
  h.flow.setBrokerState('connected');
  await flush();
  assert.deepEqual(h.events, ['admit:1', 'admit:2']);
  assert.equal(h.flow.state, 'throttled');
  assert.equal(h.flow.waiting, 2);
  assert.equal(h.flow.peakPendingMessages, 2);
  h.flow.close();
  assert.deepEqual(h.events, ['admit:1', 'admit:2', 'refuse:3:shutdown', 'refuse:4:shutdown']);
});

test('FlowController - a disconnect while publishes are in flight keeps their accounting; releases still count down', async () => {
  const h = await openHarness();
  h.submit('a', 'c1', 100);
  h.flow.setBrokerState('disconnected');
  h.submit('b', 'c1', 50);
  assert.equal(h.flow.pendingMessages, 1);
  h.release('a');
  assert.equal(h.flow.pendingMessages, 0);
  assert.equal(h.flow.pendingBytes, 0);
  await flush();
  assert.deepEqual(h.events, ['admit:a']);
  h.flow.setBrokerState('connected');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b']);
  h.flow.close();
});

test('FlowController - QoS 0 waiting for its client turn is dropped when the flow leaves open; QoS 1 keeps waiting', async () => {
  const h = await openHarness({ maxInflightPerClient: 1 });
  h.submit('a1', 'a', 10, 1);
  h.submit('a0', 'a', 10, 0);
  h.submit('a2', 'a', 10, 1);
  assert.deepEqual(h.events, ['admit:a1'], 'a is at its limit: both wait for its turn');
  h.flow.setBlocked(true);
  assert.deepEqual(h.events, ['admit:a1', 'refuse:a0:qos0_overflow']);
  assert.equal(h.flow.waiting, 1);
  h.flow.setBlocked(false);
  h.release('a1');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'refuse:a0:qos0_overflow', 'admit:a2']);
  h.flow.close();
});

test('FlowController - waiting clients are served in turn, each in its own order', async () => {
  const h = await openHarness({ maxPendingMessages: 1 });
  h.submit('x', 'c0', 10);
  for (const id of ['a1', 'a2', 'a3']) h.submit(id, 'a', 10);
  h.submit('b1', 'b', 10);
  for (const id of ['x', 'a1', 'b1', 'a2']) {
    h.release(id);
    await flush();
  }
  assert.deepEqual(h.events, ['admit:x', 'admit:a1', 'admit:b1', 'admit:a2', 'admit:a3']);
  h.flow.close();
});

test("FlowController - a waiting publish already older than publishTimeoutMs when the flow opens is refused with 'timeout', not admitted", async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] }); // the sweep does not run: the drain itself must refuse it
  const h = harness({ publishTimeoutMs: 30 });
  h.submit('old', 'c1', 10, 1, START);
  h.submit('fresh', 'c2', 10, 1, START + 5);
  h.advance(30);
  h.flow.setBrokerState('connected');
  await flush();
  assert.deepEqual(h.events, ['refuse:old:timeout', 'admit:fresh']);
  assert.equal(h.flow.waiting, 0);
  assert.equal(h.flow.pendingMessages, 1, 'only fresh was handed on');
  h.flow.close();
});

test("FlowController - a waiting publish whose timeout passed while throttled is refused with 'timeout' when a release frees room", async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const h = await openHarness({ maxPendingMessages: 1, publishTimeoutMs: 30 });
  h.submit('a', 'c1', 10);
  h.submit('late', 'c2', 10, 1, START);
  h.submit('next', 'c2', 10, 1, START + 10);
  h.advance(30);
  h.release('a');
  assert.deepEqual(h.events, ['admit:a', 'refuse:late:timeout', 'admit:next'], 'refused in the drain, and its client goes on with the next');
  h.flow.close();
});

test('FlowController - leaving open goes only through the queues that hold waiting QoS 0', async (t) => {
  const h = await openHarness({ maxInflightPerClient: 1, qos0Overflow: 'drop' });
  for (const id of ['a1', 'a2', 'a3', 'a4']) h.submit(id, 'A', 10, 1);
  h.submit('b1', 'B', 10, 1);
  h.submit('b0', 'B', 10, 0);
  h.submit('b2', 'B', 10, 1);
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1']);
  const shift = t.mock.method(Fifo.prototype, 'shift');
  const unshiftAll = t.mock.method(Fifo.prototype, 'unshiftAll');
  h.flow.setBlocked(true);
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1', 'refuse:b0:qos0_overflow']);
  assert.equal(new Set(shift.mock.calls.map((call) => call.this)).size, 1, "A's queue (QoS 1 only) is not touched");
  assert.equal(unshiftAll.mock.callCount(), 1, "only B's queue is rebuilt");

  shift.mock.resetCalls();
  unshiftAll.mock.resetCalls();
  h.flow.setBlocked(false);
  h.flow.setBlocked(true);
  assert.equal(shift.mock.callCount(), 0, 'no QoS 0 waits: nothing to go through');
  assert.equal(unshiftAll.mock.callCount(), 0);
  h.flow.setBlocked(false);
  h.release('a1');
  h.release('b1');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1', 'refuse:b0:qos0_overflow', 'admit:a2', 'admit:b2'], 'QoS 1 kept their order');
  assert.equal(h.flow.waiting, 2);
  h.flow.close();
});

test('FlowController - QoS 0 that left the queues (admitted, timed out, dropped) is not counted as waiting; QoS 0 that waits is dropped', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const h = await openHarness({ maxInflightPerClient: 1, qos0Overflow: 'drop', publishTimeoutMs: 30 });
  h.submit('a1', 'A', 10, 1);
  h.submit('a0', 'A', 10, 0);
  h.release('a1'); // a0 is admitted from the queue
  h.submit('b1', 'B', 10, 1);
  h.submit('b0', 'B', 10, 0);
  h.advance(30);
  t.mock.timers.tick(30); // b0 times out waiting for B's turn
  h.submit('c1', 'C', 10, 1);
  h.submit('c0', 'C', 10, 0);
  h.flow.setBlocked(true); // c0 is dropped
  assert.deepEqual(h.events, ['admit:a1', 'admit:a0', 'admit:b1', 'refuse:b0:timeout', 'admit:c1', 'refuse:c0:qos0_overflow']);
  h.flow.setBlocked(false);
  h.submit('b2', 'B', 10, 1);
  const shift = t.mock.method(Fifo.prototype, 'shift');
  h.flow.setBlocked(true);
  assert.equal(shift.mock.callCount(), 0, 'only QoS 1 waits');
  shift.mock.restore();
  h.flow.setBlocked(false);
  h.submit('b3', 'B', 10, 0);
  h.flow.setBlocked(true);
  assert.deepEqual(h.events.slice(6), ['refuse:b3:qos0_overflow']);
  assert.equal(h.flow.waiting, 1, 'b2');
  h.flow.close();
});

test('FlowController - a release that reopens the flow drains it at once, without queueing a second drain', async (t) => {
  const h = await openHarness({ maxPendingMessages: 1 });
  h.submit('a', 'c1', 10);
  h.submit('w', 'c2', 10);
  const queued = t.mock.method(globalThis, 'queueMicrotask');
  h.release('a');
  assert.deepEqual(h.events, ['admit:a', 'admit:w'], 'admitted by the release itself');
  assert.deepEqual(h.transitions, ['throttled<-open', 'open<-throttled', 'throttled<-open']);
  assert.equal(queued.mock.callCount(), 0);
  queued.mock.restore();
  h.flow.close();
});

test('FlowController - a client is forgotten once nothing of it waits or is in flight, whichever way its publishes left', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const h = await openHarness({ maxPendingMessages: 2, publishTimeoutMs: 30 });
  h.submit('a', 'c1', 10);
  h.submit('b', 'c2', 10);
  h.submit('late', 'c3', 10); // throttled: waits, then times out
  h.submit('q0', 'c4', 10, 0); // QoS 0 while throttled: dropped at once
  assert.equal(h.flow.clientsTracked, 3, 'c1 and c2 in flight, c3 waiting; c4 never kept');
  h.advance(30);
  t.mock.timers.tick(30);
  assert.equal(h.flow.clientsTracked, 2);
  h.release('a');
  h.release('b');
  await flush();
  assert.deepEqual(h.events, ['admit:a', 'admit:b', 'refuse:q0:qos0_overflow', 'refuse:late:timeout']);
  assert.equal(h.flow.clientsTracked, 0);
  h.flow.close();
});

test('FlowController - a client whose waiting publishes timed out while it held a turn is served once, in order, when it publishes again', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const h = await openHarness({ maxPendingMessages: 1, publishTimeoutMs: 30 });
  h.submit('x', 'c0', 10);
  h.submit('old1', 'c1', 10);
  h.submit('old2', 'c1', 10);
  h.advance(30);
  t.mock.timers.tick(30);
  assert.deepEqual(h.events, ['admit:x', 'refuse:old1:timeout', 'refuse:old2:timeout']);
  h.submit('b1', 'c2', 10);
  h.submit('new1', 'c1', 10);
  h.submit('new2', 'c1', 10);
  for (const id of ['x', 'b1', 'new1', 'new2']) {
    h.release(id);
    await flush();
  }
  assert.deepEqual(h.events.slice(3), ['admit:b1', 'admit:new1', 'admit:new2']);
  assert.equal(h.flow.clientsTracked, 0);
  assert.equal(h.flow.waiting, 0);
  h.flow.close();
});

test('FlowController - a client at its in-flight limit gets its turn back at a release and stays in order', async () => {
  const h = await openHarness({ maxInflightPerClient: 1 });
  h.submit('a1', 'a', 10);
  h.submit('a2', 'a', 10);
  h.submit('a3', 'a', 10);
  h.submit('b1', 'b', 10);
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1']);
  h.release('a1');
  await flush();
  h.release('b1');
  h.release('a2');
  await flush();
  assert.deepEqual(h.events, ['admit:a1', 'admit:b1', 'admit:a2', 'admit:a3']);
  h.release('a3');
  assert.equal(h.flow.clientsTracked, 0);
  h.flow.close();
});

test("FlowController - a stale turn left by timed-out publishes does not make the client's newer waiting publishes forgotten", async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const h = await openHarness({ maxPendingMessages: 2, maxInflightPerClient: 1, publishTimeoutMs: 30 });
  h.submit('x', 'c0', 10);
  h.submit('y', 'c9', 10);
  h.submit('old', 'c1', 10);
  h.advance(30);
  t.mock.timers.tick(30);
  h.submit('new1', 'c1', 10);
  h.submit('new2', 'c1', 10);
  h.release('x');
  await flush();
  h.release('y');
  await flush();
  h.submit('new3', 'c1', 10); // room now, but new2 waits for c1's in-flight limit: new3 must wait behind it
  assert.deepEqual(h.events, ['admit:x', 'admit:y', 'refuse:old:timeout', 'admit:new1']);
  h.release('new1');
  await flush();
  h.release('new2');
  await flush();
  assert.deepEqual(h.events.slice(4), ['admit:new2', 'admit:new3']);
  h.release('new3');
  assert.equal(h.flow.clientsTracked, 0);
  h.flow.close();
});
