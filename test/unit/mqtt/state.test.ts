import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/observability/logger.js';
import { createRedisState } from '../../../src/mqtt/redis/state.js';
import { createMqttState } from '../../../src/mqtt/state.js';
import { stateKeys } from '../../../src/mqtt/redis/keys.js';
import { uniqueName, waitFor } from '../../helpers/amqp.js';
import { freePort } from '../../helpers/bridge-process.js';
import { connectRedis, deleteKeys, redisPersistence, startOwnRedis } from '../../helpers/redis.js';

const prefixes: string[] = [];
after(async () => {
  for (const prefix of prefixes) await deleteKeys(prefix);
});

const mqttConfig = (persistence?: ReturnType<typeof redisPersistence>) => configSchema.parse({ mqtt: persistence ? { persistence } : {} }).mqtt;
const callbacks = { logger: silentLogger(), onDropped: () => {}, onQos2Refused: () => {}, onCondemned: () => {} };

test('mqtt state - memory by default: always ready, with the memory store and ledger (what the session file needs)', async () => {
  const state = await createMqttState({ config: mqttConfig(), ...callbacks });
  assert.equal(state.kind, 'memory');
  assert.deepEqual(state.health(), { ready: true });
  assert.match(state.brokerId, /^[0-9a-f-]{36}$/);
  await state.close();
});

test('mqtt state - redis: ready once connected; a graceful close takes the instance out of the fleet and drops its own clients\' wills', async () => {
  const settings = redisPersistence(`${uniqueName('unit-state')}:`);
  prefixes.push(settings.keyPrefix);
  const state = await createMqttState({ config: mqttConfig(settings), ...callbacks });
  assert.equal(state.kind, 'redis');
  assert.deepEqual(state.health(), { ready: true });
  if (state.kind !== 'redis') return;
  const redis = await connectRedis(settings);
  try {
    assert.notEqual(await redis.zscore(stateKeys.instances, state.brokerId), null, 'known as alive');
    await state.store.wills.put('dev-1', { cmd: 'publish', topic: 'w', payload: Buffer.from('x'), qos: 0 });
    await state.close();
    assert.equal(await redis.zscore(stateKeys.instances, state.brokerId), null, 'gone from the fleet');
    assert.equal(await redis.hlen(stateKeys.wills(state.brokerId)), 0, 'a graceful stop publishes no will');
    assert.equal(state.health().ready, false);
  } finally {
    redis.disconnect();
  }
});

test('mqtt state - redis unreachable at start: BRIDGE_ERR_REDIS naming the URL without its password, after the start timeout', async () => {
  const port = await freePort();
  const settings = { ...redisPersistence(), url: `redis://user:secret@127.0.0.1:${port}/0` };
  await assert.rejects(
    createRedisState({ settings, limits: mqttConfig(), session: { maxOfflineMessages: 10, onDropped: () => {} }, logger: silentLogger(), onCondemned: () => {}, startTimeoutMs: 500 }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'BRIDGE_ERR_REDIS');
      assert.match(error.message, new RegExp(`Redis at redis://user:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0 could not be reached within 500 ms`));
      assert.doesNotMatch(error.message, /secret/);
      return true;
    },
  );
});

test('mqtt state - redis health says why it is not ready: unreachable, then ready again once a heartbeat passes; condemned, it closes its connections and joins again', async () => {
  const own = await startOwnRedis();
  try {
    const settings = redisPersistence(`${uniqueName('unit-health')}:`, own.url);
    let condemned = 0;
    const state = await createRedisState({
      settings,
      limits: mqttConfig(),
      session: { maxOfflineMessages: 10, onDropped: () => {} },
      logger: silentLogger(),
      onCondemned: () => condemned++,
      heartbeatIntervalMs: 100,
    });
    try {
      await own.stop();
      await waitFor(() => !state.health().ready, 'not ready');
      assert.match(state.health().reason!, /^Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unreachable/);
      await own.start();
      await waitFor(() => state.health().ready, () => `ready again (${state.health().reason})`, 15_000);
      // Another instance takes it for dead (its score 0: condemned), as after a long silence.
      const redis = await connectRedis(settings);
      await redis.zadd(stateKeys.instances, 0, state.brokerId);
      redis.disconnect();
      await waitFor(() => condemned === 1, 'the state to learn it was condemned');
      await waitFor(() => state.health().ready, 'ready after joining again');
    } finally {
      await state.close();
    }
  } finally {
    await own.remove();
  }
});
