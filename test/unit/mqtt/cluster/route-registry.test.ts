import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Redis } from 'ioredis';
import { LocalRoutes } from '../../../../src/mqtt/cluster/local-routes.js';
import type { RouteNotice } from '../../../../src/mqtt/cluster/route-follower.js';
import { clusterNames, defineClusterCommands, parseNotice, RouteRegistry } from '../../../../src/mqtt/cluster/route-registry.js';
import { createRedisClient } from '../../../../src/redis/client.js';
import { waitFor } from '../../../helpers/amqp.js';
import { deleteKeys, keysUnder, redisSettings } from '../../../helpers/cluster.js';

const settings = redisSettings();
const names = clusterNames(settings.keyPrefix);
const connections: Redis[] = [];

async function connection(): Promise<Redis> {
  const redis = createRedisClient(settings, 'test');
  connections.push(redis);
  await redis.connect();
  defineClusterCommands(redis);
  return redis;
}

async function registry(self: string, timeoutMs = 10_000) {
  const local = new LocalRoutes();
  const failures: unknown[] = [];
  const routes = new RouteRegistry({ redis: await connection(), names, self, local, timeoutMs, onFailed: (error) => failures.push(error) });
  return { routes, local, failures };
}

/** Every notice on the routes channel, as it arrives. */
async function listen(): Promise<RouteNotice[]> {
  const subscriber = await connection();
  const notices: RouteNotice[] = [];
  subscriber.on('message', (_channel: string, message: string) => notices.push(parseNotice(message)!));
  await subscriber.subscribe(names.routesChannel);
  return notices;
}

after(async () => {
  for (const redis of connections) redis.disconnect();
  await deleteKeys(settings.keyPrefix);
});

test('route registry - registering stores the filters under the key prefix and announces a reset; changes are announced with the next version', async () => {
  const notices = await listen();
  const { routes, local } = await registry('a');
  local.add('x/#', 'l1');
  local.add('y', 'l1');
  await routes.register();
  assert.equal(routes.registered, true);
  const first = await routes.read('a');
  assert.deepEqual([first?.version, [...first!.filters].sort()], [1, ['x/#', 'y']]);
  assert.deepEqual((await keysUnder(settings.keyPrefix)).filter((key) => key.includes(':a') || !key.includes(':alive:')), [
    'cluster:alive:a',
    'cluster:instances',
    'cluster:routes:a',
    'cluster:versions',
  ]);
  local.remove('y', 'l1');
  local.add('z', 'l2');
  await routes.announce();
  const read = await routes.read('a');
  assert.deepEqual([read?.version, [...read!.filters].sort()], [2, ['x/#', 'z']]);
  local.add('w', 'l3');
  await Promise.all([routes.announce(), routes.announce()]);
  await waitFor(() => notices.length === 3, 'three notices');
  assert.deepEqual(notices, [
    { instance: 'a', version: 1, added: [], removed: [], reset: true, gone: false },
    { instance: 'a', version: 2, added: ['z'], removed: ['y'], reset: false, gone: false },
    { instance: 'a', version: 3, added: ['w'], removed: [], reset: false, gone: false },
  ]);
  assert.deepEqual(await routes.instances(), ['a']);
  await routes.leave();
  assert.equal(await routes.read('a'), null);
});

test('route registry - an instance whose heartbeat expired is removed by the others and announced gone; it registers again, its versions going on', async () => {
  const notices = await listen();
  const dying = await registry('dying', 300);
  dying.local.add('d/#', 'l');
  await dying.routes.register();
  const alive = await registry('alive');
  await alive.routes.register();
  assert.deepEqual(await alive.routes.sweep(), [], 'nobody is dead yet');
  await waitFor(async () => (await alive.routes.sweep()).includes('dying'), 'the heartbeat to expire', 5_000);
  assert.equal(await alive.routes.read('dying'), null);
  assert.deepEqual((await alive.routes.instances()).sort(), ['alive']);
  await waitFor(() => notices.some((notice) => notice.instance === 'dying' && notice.gone), 'the gone notice');
  assert.deepEqual(notices.find((notice) => notice.gone), { instance: 'dying', version: 1, added: [], removed: [], reset: false, gone: true });

  // The instance comes back (its event loop was stuck, or Redis was away): a change finds it expired and registers it all again.
  dying.local.add('e', 'l');
  await dying.routes.announce();
  const back = await alive.routes.read('dying');
  assert.deepEqual([back?.version, [...back!.filters].sort()], [2, ['d/#', 'e']]);
  await dying.routes.heartbeat();
  assert.deepEqual(await alive.routes.sweep(), [], 'a live heartbeat keeps it');
  await alive.routes.leave();
  await dying.routes.leave();
});

test('route registry - a heartbeat that finds its key gone registers everything again', async () => {
  const { routes, local } = await registry('h', 10_000);
  local.add('h/1', 'l');
  await routes.register();
  const redis = await connection();
  await redis.del(names.alive('h'), names.routes('h'));
  await routes.heartbeat();
  assert.deepEqual(await routes.read('h'), { version: 2, filters: ['h/1'] });
  await routes.leave();
});

test('route registry - a write that fails (Redis away) is reported and the next one is a full registration', async () => {
  const { routes, local, failures } = await registry('f');
  local.add('f/1', 'l');
  await routes.register();
  connections.at(-1)!.disconnect();
  local.add('f/2', 'l');
  await routes.announce();
  assert.equal(failures.length, 1);
  assert.equal(routes.registered, false);
});

test('route registry - parseNotice reads what the scripts write and nothing else', () => {
  assert.deepEqual(parseNotice('{"i":"a","v":3,"a":{},"d":["x"]}'), { instance: 'a', version: 3, added: [], removed: ['x'], reset: false, gone: false });
  for (const text of ['', 'null', '[]', '{"i":1,"v":1}', '{"i":"a"}', 'not json']) assert.equal(parseNotice(text), null, text);
});
