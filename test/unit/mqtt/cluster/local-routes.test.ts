import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalRoutes } from '../../../../src/mqtt/cluster/local-routes.js';

test('local routes - a filter is a route while one listener holds it (reference counted)', () => {
  const routes = new LocalRoutes();
  const [one, two] = [() => {}, () => {}];
  assert.equal(routes.add('a/#', one), true);
  assert.equal(routes.add('a/#', two), false);
  assert.equal(routes.add('a/#', two), false, 'the same listener twice is one');
  assert.deepEqual(routes.takeChanges(), { added: ['a/#'], removed: [] });
  assert.equal(routes.remove('a/#', one), false);
  assert.equal(routes.remove('a/#', () => {}), false, 'a listener never added changes nothing');
  assert.deepEqual(routes.takeChanges(), { added: [], removed: [] });
  assert.equal(routes.remove('a/#', two), true);
  assert.deepEqual(routes.takeChanges(), { added: [], removed: ['a/#'] });
  assert.equal(routes.size, 0);
});

test('local routes - a filter added and removed between two announcements is not announced at all', () => {
  const routes = new LocalRoutes();
  const listener = () => {};
  routes.add('x', listener);
  routes.remove('x', listener);
  assert.equal(routes.changed, true);
  assert.deepEqual(routes.takeChanges(), { added: [], removed: [] });
  assert.equal(routes.changed, false);
});

test('local routes - takeAll gives every filter held and counts them as announced', () => {
  const routes = new LocalRoutes();
  const listener = () => {};
  routes.add('x', listener);
  routes.add('y', listener);
  assert.deepEqual(routes.takeAll().sort(), ['x', 'y']);
  assert.deepEqual(routes.takeChanges(), { added: [], removed: [] });
  routes.remove('x', listener);
  assert.deepEqual(routes.takeChanges(), { added: [], removed: ['x'] });
});
