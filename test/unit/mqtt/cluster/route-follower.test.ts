import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RemoteRoutes } from '../../../../src/mqtt/cluster/remote-routes.js';
import { RouteFollower, type RouteSnapshot } from '../../../../src/mqtt/cluster/route-follower.js';

/** A follower whose reads answer from `stored` when the test releases them. */
function follower(stored: Map<string, RouteSnapshot>) {
  const routes = new RemoteRoutes();
  const reads: string[] = [];
  const waiting: Array<() => void> = [];
  let hold = false;
  const failures: string[] = [];
  const follow = new RouteFollower(
    routes,
    'self',
    async (instance) => {
      reads.push(instance);
      if (hold) await new Promise<void>((resolve) => waiting.push(resolve));
      if (instance === 'broken') throw new Error('Redis away');
      return stored.get(instance) ?? null;
    },
    (instance) => failures.push(instance),
  );
  return {
    routes,
    follow,
    reads,
    failures,
    holdReads: () => (hold = true),
    release: () => {
      hold = false;
      waiting.splice(0).forEach((resolve) => resolve());
    },
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const filtersOf = (routes: RemoteRoutes, instance: string) => [...routes.filtersOf(instance)].sort();

test('route follower - changes are applied in order without reading; a missed one makes it read the whole set', async () => {
  const stored = new Map([['b', { version: 1, filters: ['x'] }]]);
  const { routes, follow, reads } = follower(stored);
  await follow.resync(['b', 'self']);
  assert.deepEqual(reads, ['b'], 'its own routes are not followed');
  follow.notice({ instance: 'b', version: 2, added: ['y'], removed: [] });
  follow.notice({ instance: 'b', version: 3, added: [], removed: ['x'] });
  assert.deepEqual(filtersOf(routes, 'b'), ['y']);
  assert.deepEqual(reads, ['b'], 'in-order changes need no read');
  stored.set('b', { version: 6, filters: ['y', 'z', 'w'] });
  follow.notice({ instance: 'b', version: 6, added: ['w'], removed: [] });
  await settle();
  assert.deepEqual(reads, ['b', 'b'], 'versions 4 and 5 were missed');
  assert.deepEqual(filtersOf(routes, 'b'), ['w', 'y', 'z']);
});

test('route follower - a notice already in what was read is ignored; one that came during the read is applied after it', async () => {
  const stored = new Map([['b', { version: 5, filters: ['a', 'b'] }]]);
  const { routes, follow, holdReads, release } = follower(stored);
  holdReads();
  const resync = follow.resync(['b']);
  follow.notice({ instance: 'b', version: 5, added: ['b'], removed: [] }); // stored before the read: already in it
  follow.notice({ instance: 'b', version: 6, added: [], removed: ['a'] }); // after the read
  release();
  await resync;
  assert.deepEqual(filtersOf(routes, 'b'), ['b']);
});

test('route follower - a new instance (reset) is read; gone drops it; a stale gone from before the snapshot is ignored', async () => {
  const stored = new Map<string, RouteSnapshot>();
  const { routes, follow, reads } = follower(stored);
  stored.set('c', { version: 1, filters: ['c/#'] });
  follow.notice({ instance: 'c', version: 1, reset: true });
  await settle();
  assert.deepEqual(reads, ['c']);
  assert.deepEqual(routes.instances(), ['c']);
  assert.deepEqual([...routes.match('c/1')], ['c']);
  follow.notice({ instance: 'c', version: 0, gone: true });
  assert.deepEqual(routes.instances(), ['c'], 'a gone from before the version read is no news');
  follow.notice({ instance: 'c', version: 1, gone: true });
  assert.deepEqual(routes.instances(), []);
  assert.equal(routes.match('c/1').size, 0);
});

test('route follower - an instance taken for dead and back continues its versions: its reset is read, the old state dropped', async () => {
  const stored = new Map([['b', { version: 3, filters: ['old'] }]]);
  const { routes, follow } = follower(stored);
  await follow.resync(['b']);
  follow.notice({ instance: 'b', version: 3, gone: true });
  stored.set('b', { version: 4, filters: ['new'] });
  follow.notice({ instance: 'b', version: 4, reset: true });
  await settle();
  assert.deepEqual(filtersOf(routes, 'b'), ['new']);
});

test('route follower - resync drops the instances no longer registered and reports a read that failed', async () => {
  const stored = new Map([
    ['b', { version: 1, filters: ['x'] }],
    ['c', { version: 1, filters: ['y'] }],
  ]);
  const { routes, follow, failures } = follower(stored);
  await follow.resync(['b', 'c']);
  stored.delete('c');
  await follow.resync(['b']);
  assert.deepEqual(routes.instances(), ['b'], 'c is known in memory, read, and found gone');
  await assert.rejects(follow.resync(['broken']), /Redis away/);
  assert.deepEqual(failures, ['broken']);
  assert.deepEqual(routes.instances(), ['b']);
});
