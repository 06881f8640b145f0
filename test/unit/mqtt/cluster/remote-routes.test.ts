import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqemitter from 'mqemitter';
import { RemoteRoutes } from '../../../../src/mqtt/cluster/remote-routes.js';

const sorted = (set: ReadonlySet<string>) => [...set].sort();

test('remote routes - a topic goes to exactly the instances with a matching filter', () => {
  const routes = new RemoteRoutes();
  routes.add('b', 'devices/+/commands/#');
  routes.add('c', 'devices/d1/commands/reboot');
  routes.add('c', 'other');
  assert.deepEqual(sorted(routes.match('devices/d1/commands/reboot')), ['b', 'c']);
  assert.deepEqual(sorted(routes.match('devices/d2/commands/x')), ['b']);
  assert.deepEqual(sorted(routes.match('devices/d2/telemetry')), [], 'uplink nobody subscribes to goes nowhere');
  assert.equal(routes.size, 3);
});

test('remote routes - filters starting with + or # do not take topics starting with $ [MQTT-4.7.2-1]; literal ones do', () => {
  const routes = new RemoteRoutes();
  routes.add('b', '#');
  routes.add('c', '+/x');
  routes.add('d', '$aws/#');
  assert.deepEqual(sorted(routes.match('$aws/x')), ['d']);
  assert.deepEqual(sorted(routes.match('a/x')), ['b', 'c']);
});

test('remote routes - matching agrees with aedes\' own emitter (mqemitter) on wildcards and empty levels', async () => {
  const filters = ['a/+', '+/b', 'a/#', '#', '+', 'a/+/c', '/', '+/+', 'a//c', 'a/+/+'];
  const topics = ['a', 'a/', '/b', 'a/b', 'a/b/c', 'a//c', '/', 'x', 'a/b/c/d', '//'];
  const routes = new RemoteRoutes();
  filters.forEach((filter, index) => routes.add(String(index), filter));
  const emitter = mqemitter({ matchEmptyLevels: true });
  const matched = new Map<string, Set<string>>();
  for (const [index, filter] of filters.entries()) {
    emitter.on(filter, (message, done) => {
      matched.get(message.topic)!.add(String(index));
      done();
    });
  }
  for (const topic of topics) {
    matched.set(topic, new Set());
    await new Promise<void>((resolve) => emitter.emit({ topic }, () => resolve()));
    assert.deepEqual(sorted(routes.match(topic)), sorted(matched.get(topic)!), topic);
  }
});

test('remote routes - replace sets an instance\'s filters exactly; drop forgets it; a filter two instances hold stays for the other', () => {
  const routes = new RemoteRoutes();
  routes.replace('b', ['x', 'y']);
  routes.add('c', 'x');
  routes.replace('b', ['y', 'z']);
  assert.deepEqual(sorted(routes.filtersOf('b')), ['y', 'z']);
  assert.deepEqual(sorted(routes.match('x')), ['c']);
  routes.drop('b');
  assert.deepEqual(routes.instances(), ['c']);
  assert.deepEqual(sorted(routes.match('y')), []);
  routes.replace('d', []);
  assert.deepEqual(routes.instances().sort(), ['c', 'd'], 'an instance with no filter is known (it receives $SYS)');
  routes.remove('c', 'x');
  routes.remove('c', 'never-added');
  assert.equal(routes.size, 0);
  assert.equal(routes.match('x').size, 0);
});

test('remote routes - a filter over the matcher\'s level limit is skipped, not thrown', () => {
  const routes = new RemoteRoutes();
  routes.add('b', Array.from({ length: 200 }, () => 'a').join('/'));
  assert.equal(routes.size, 0);
});
