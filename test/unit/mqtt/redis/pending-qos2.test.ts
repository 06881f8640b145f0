import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Redis } from 'ioredis';
import { PENDING_QOS2_ENTRY_BYTES } from '../../../../src/config/schema.js';
import { RedisPendingQos2 } from '../../../../src/mqtt/redis/pending-qos2.js';
import { uniqueName } from '../../../helpers/amqp.js';
import { connectRedis, deleteKeys, redisPersistence } from '../../../helpers/redis.js';

const settings = redisPersistence(`${uniqueName('unit-qos2')}:`);
const connections: Redis[] = [];

after(async () => {
  for (const redis of connections) redis.disconnect();
  await deleteKeys(settings.keyPrefix);
});

async function pending(maxBytes: number): Promise<RedisPendingQos2> {
  const redis = await connectRedis(settings);
  connections.push(redis);
  return new RedisPendingQos2(redis, maxBytes);
}

test('redis QoS 2 state - packet ids only, bounded in bytes per session; the same id counts once; delete and clear free room', async () => {
  const state = await pending(3 * PENDING_QOS2_ENTRY_BYTES);
  const id = uniqueName('dev');
  for (const messageId of [1, 2, 3, 3]) assert.deepEqual(await state.add(id, messageId), { ok: true });
  assert.deepEqual(await state.add(id, 4), { ok: false, heldBytes: 3 * PENDING_QOS2_ENTRY_BYTES });
  assert.equal(await state.bytesOf(id), 3 * PENDING_QOS2_ENTRY_BYTES);
  assert.equal(await state.has(id, 2), true);
  assert.equal(await state.has(id, 4), false);
  assert.equal(await state.delete(id, 2), true);
  assert.equal(await state.delete(id, 2), false, 'released once');
  assert.deepEqual(await state.add(id, 4), { ok: true });
  assert.deepEqual(await state.add(uniqueName('other'), 1), { ok: true }, 'the bound is per session');
  await state.clear(id);
  assert.equal(await state.bytesOf(id), 0);
});

test('redis QoS 2 state - two instances adding at once cannot pass the bound together', async () => {
  const [one, two] = [await pending(5 * PENDING_QOS2_ENTRY_BYTES), await pending(5 * PENDING_QOS2_ENTRY_BYTES)];
  const id = uniqueName('race');
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? one : two).add(id, i + 1)));
  assert.equal(answers.filter((answer) => answer.ok).length, 5);
  assert.equal(await one.bytesOf(id), 5 * PENDING_QOS2_ENTRY_BYTES);
});

test('redis QoS 2 state - without a bound it takes every id', async () => {
  const state = await pending(Number.POSITIVE_INFINITY);
  const id = uniqueName('unbounded');
  for (let messageId = 1; messageId <= 100; messageId++) assert.deepEqual(await state.add(id, messageId), { ok: true });
});
