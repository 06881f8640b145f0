import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Redis } from 'ioredis';
import { RedisOfflineQueues } from '../../../../src/mqtt/redis/offline-queue.js';
import { uniqueName } from '../../../helpers/amqp.js';
import { connectRedis, deleteKeys, redisPersistence } from '../../../helpers/redis.js';

const settings = redisPersistence(`${uniqueName('unit-queue')}:`);
const connections: Redis[] = [];

after(async () => {
  for (const redis of connections) redis.disconnect();
  await deleteKeys(settings.keyPrefix);
});

async function queues(maxOfflineMessages: number) {
  const redis = await connectRedis(settings);
  connections.push(redis);
  const dropped: string[] = [];
  return { redis, dropped, queues: new RedisOfflineQueues(redis, { maxOfflineMessages, onDropped: (clientId) => dropped.push(clientId) }) };
}

let counter = 0;
const publish = (topic: string) => ({ cmd: 'publish', topic, payload: Buffer.from(topic), qos: 1, retain: false, dup: false, brokerId: 'broker-a', brokerCounter: ++counter });

async function topics(source: RedisOfflineQueues, clientId: string): Promise<string[]> {
  const found: string[] = [];
  for await (const packet of source.stream(clientId)) found.push(packet.cmd === 'publish' ? `${packet.topic}${packet.messageId === undefined ? '' : `#${packet.messageId}`}` : `${packet.cmd}#${packet.messageId}`);
  return found;
}

test('redis offline queue - bounded: past maxOfflineMessages the oldest message not yet sent is dropped and counted; one in flight keeps its place', async () => {
  const { queues: q, dropped } = await queues(3);
  const id = uniqueName('bounded');
  const first = publish('t/1');
  await q.enqueue([{ clientId: id, subscriptions: 1 }], first);
  await q.enqueue([{ clientId: id, subscriptions: 1 }], publish('t/2'));
  await q.update(id, { ...first, messageId: 11 }); // t/1 is sent, awaiting PUBACK
  await q.enqueue([{ clientId: id, subscriptions: 1 }], publish('t/3'));
  await q.enqueue([{ clientId: id, subscriptions: 1 }], publish('t/4'));
  assert.deepEqual(await topics(q, id), ['t/1#11', 't/3', 't/4'], 't/2, the oldest not sent, was dropped');
  assert.deepEqual(dropped, [id]);
  assert.equal(await q.length(id), 3);
});

test('redis offline queue - when every other queued message is in flight, the one arriving is the oldest not sent: it is dropped (as in memory)', async () => {
  const { queues: q, dropped } = await queues(2);
  const id = uniqueName('inflight');
  const [a, b] = [publish('a'), publish('b')];
  for (const [packet, messageId] of [[a, 1], [b, 2]] as const) {
    await q.enqueue([{ clientId: id, subscriptions: 1 }], packet);
    await q.update(id, { ...packet, messageId });
  }
  await q.enqueue([{ clientId: id, subscriptions: 1 }], publish('c'));
  assert.deepEqual(await topics(q, id), ['a#1', 'b#2']);
  assert.deepEqual(dropped, [id]);
});

test('redis offline queue - one script queues a message for every session, once per session however many of its subscriptions match; queuing it again changes nothing', async () => {
  const { queues: q, dropped } = await queues(10);
  const [one, two] = [uniqueName('one'), uniqueName('two')];
  const packet = publish('fan/out');
  await q.enqueue([{ clientId: one, subscriptions: 2 }, { clientId: two, subscriptions: 1 }], packet);
  await q.enqueue([{ clientId: one, subscriptions: 2 }], packet);
  assert.deepEqual(await topics(q, one), ['fan/out']);
  assert.deepEqual(await topics(q, two), ['fan/out']);
  assert.deepEqual(dropped, []);
  // aedes lets go of the copy of each subscription it does not send (a duplicate, or one authorizeForward refused): the last one removes it.
  assert.equal(await q.clear(one, { brokerId: packet.brokerId, brokerCounter: packet.brokerCounter }), undefined);
  assert.deepEqual(await topics(q, one), ['fan/out'], 'one of its two subscriptions still holds it');
  assert.equal((await q.clear(one, { brokerId: packet.brokerId, brokerCounter: packet.brokerCounter }))?.topic, 'fan/out');
  assert.deepEqual(await topics(q, one), []);
});

test('redis offline queue - a message sent is cleared by its packet id only; one not sent by its message id only', async () => {
  const { queues: q } = await queues(10);
  const id = uniqueName('clear');
  const [sent, waiting] = [publish('sent'), publish('waiting')];
  await q.enqueue([{ clientId: id, subscriptions: 1 }], sent);
  await q.enqueue([{ clientId: id, subscriptions: 1 }], waiting);
  await q.update(id, { ...sent, messageId: 5 });
  assert.equal(await q.clear(id, { brokerId: sent.brokerId, brokerCounter: sent.brokerCounter }), undefined, 'in flight: not cleared by its message id');
  assert.equal(await q.clear(id, { messageId: 6 }), undefined, 'no such packet id');
  const cleared = await q.clear(id, { messageId: 5 });
  assert.deepEqual([cleared?.topic, cleared?.messageId, cleared?.payload?.toString()], ['sent', 5, 'sent']);
  assert.deepEqual(await topics(q, id), ['waiting']);
  assert.equal((await q.clear(id, { brokerId: waiting.brokerId, brokerCounter: waiting.brokerCounter }))?.topic, 'waiting');
  assert.equal(await q.length(id), 0);
});

test('redis offline queue - a PUBREL takes the place of its PUBLISH and is given back as it is; an unknown message or packet id is "no such packet"', async () => {
  const { queues: q } = await queues(10);
  const id = uniqueName('pubrel');
  const packet = { ...publish('qos2'), qos: 2 };
  await q.enqueue([{ clientId: id, subscriptions: 1 }], packet);
  await q.update(id, { ...packet, messageId: 9 });
  await q.update(id, { cmd: 'pubrel', messageId: 9 });
  assert.deepEqual(await topics(q, id), ['pubrel#9']);
  await assert.rejects(q.update(id, { cmd: 'pubrel', messageId: 10 }), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND' });
  await assert.rejects(q.update(id, { ...publish('never queued'), messageId: 3 }), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND' });
  assert.equal((await q.clear(id, { messageId: 9 }))?.cmd, 'pubrel');
});

test('redis offline queue - a packet id given again to another message moves to it; the first keeps its own entry', async () => {
  const { queues: q } = await queues(10);
  const id = uniqueName('reuse');
  const [a, b] = [publish('a'), publish('b')];
  await q.enqueue([{ clientId: id, subscriptions: 1 }], a);
  await q.enqueue([{ clientId: id, subscriptions: 1 }], b);
  await q.update(id, { ...a, messageId: 1 });
  await q.update(id, { ...a, messageId: 2 }); // sent again after a reconnect, with another id
  await q.update(id, { ...b, messageId: 1 });
  assert.deepEqual(await topics(q, id), ['a#2', 'b#1']);
  assert.equal((await q.clear(id, { messageId: 1 }))?.topic, 'b');
  assert.equal((await q.clear(id, { messageId: 2 }))?.topic, 'a');
});

test('redis offline queue - binary payloads and any client id come back byte for byte, in order; drop forgets a session', async () => {
  const { queues: q, redis } = await queues(1000);
  const id = 'dev:1/é \u0000 *';
  const payloads = Array.from({ length: 250 }, (_, i) => Buffer.from([i % 256, 0, 255, 10]));
  for (const [i, payload] of payloads.entries()) await q.enqueue([{ clientId: id, subscriptions: 1 }], { ...publish(`bin/${i}`), payload });
  const back: Buffer[] = [];
  for await (const packet of q.stream(id)) back.push(packet.payload!);
  assert.deepEqual(back, payloads, 'all of them, across stream batches, in order');
  await q.drop(id);
  assert.equal(await q.length(id), 0);
  assert.deepEqual(await redis.keys(`${settings.keyPrefix}queue*${encodeURIComponent(id)}*`), []);
});
