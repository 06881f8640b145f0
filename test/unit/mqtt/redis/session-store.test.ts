import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Aedes } from 'aedes';
import type { Redis } from 'ioredis';
import Packet from 'aedes-packet';
import { RedisRetainedLedger } from '../../../../src/mqtt/redis/retained-ledger.js';
import { createRedisSessionStore, type RedisSessionStore } from '../../../../src/mqtt/redis/session-store.js';
import { RetainedQuota } from '../../../../src/mqtt/retained-quota.js';
import { ownerOf } from '../../../../src/mqtt/session-registry.js';
import type { QueueCheck } from '../../../../src/mqtt/hooks/authorize-forward.js';
import { PENDING_QOS2_ENTRY_BYTES } from '../../../../src/config/schema.js';
import { uniqueName, waitFor } from '../../../helpers/amqp.js';
import { connectRedis, deleteKeys, redisPersistence } from '../../../helpers/redis.js';

const connections: Redis[] = [];
const brokers: Aedes[] = [];
const prefixes: string[] = [];

after(async () => {
  for (const broker of brokers) await new Promise<void>((resolve) => broker.close(() => resolve()));
  for (const redis of connections) redis.disconnect();
  for (const prefix of prefixes) await deleteKeys(prefix);
});

/** The calls aedes makes of its persistence that these tests make too. */
interface AedesCalls {
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string; topic: string }>, packet: Packet): Promise<void>;
  outgoingStream(client: { id: string }): AsyncIterable<{ topic: string }>;
  incomingStorePacket(client: object, packet: object): Promise<void>;
  incomingGetPacket(client: object, packet: object): Promise<unknown>;
  incomingDelPacket(client: object, packet: object): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): NodeJS.ReadableStream;
  streamWill(brokers: object): AsyncIterable<unknown>;
}

interface Made {
  store: RedisSessionStore;
  aedes: AedesCalls;
  redis: Redis;
  errors: string[];
  dropped: string[];
  refusals: Array<[string, number]>;
  /** Commands sent on the store's connection so far. */
  commands: string[];
}

/** A Redis store on a connection of its own; `settings` to share a key prefix with another (another instance). */
async function store(options: { settings?: ReturnType<typeof redisPersistence>; mayQueue?: QueueCheck; maxPendingQos2Bytes?: number; withBroker?: boolean } = {}): Promise<Made> {
  const settings = options.settings ?? redisPersistence(`${uniqueName('unit-store')}:`);
  if (!prefixes.includes(settings.keyPrefix)) prefixes.push(settings.keyPrefix);
  const redis = await connectRedis(settings);
  connections.push(redis);
  const commands: string[] = [];
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: { name: string }, stream?: unknown) => {
    commands.push(command.name);
    return send(command as never, stream as never);
  });
  const errors: string[] = [];
  const dropped: string[] = [];
  const refusals: Array<[string, number]> = [];
  const limits = { maxRetainedMessages: 100, maxRetainedBytes: 100_000, maxRetainedMessagesPerUser: 100, maxRetainedBytesPerUser: 100_000 };
  const ledger = new RedisRetainedLedger(redis, limits);
  const made = createRedisSessionStore(redis, ledger, {
    maxOfflineMessages: 10,
    onDropped: (clientId) => dropped.push(clientId),
    maxPendingQos2BytesPerSession: options.maxPendingQos2Bytes ?? 2 * PENDING_QOS2_ENTRY_BYTES,
    onQos2Refused: (clientId, held) => refusals.push([clientId, held]),
    retained: new RetainedQuota(ledger, { storeBeforeAck: true }),
    mayQueue: options.mayQueue,
    instanceId: uniqueName('broker'),
    keyPrefix: settings.keyPrefix,
    silentAfterMs: 30_000,
    onError: (what) => errors.push(what),
  });
  await made.registry.heartbeat(true);
  if (options.withBroker !== false) brokers.push(await Aedes.createBroker({ id: uniqueName('broker'), persistence: made.persistence as never }));
  commands.length = 0;
  return { store: made, aedes: made.persistence as unknown as AedesCalls, redis, errors, dropped, refusals, commands };
}

let counter = 0;
const publish = (topic: string, qos = 1) => new Packet({ cmd: 'publish', topic, payload: Buffer.from(topic), qos, retain: false, brokerId: 'b', brokerCounter: ++counter });

async function queued(aedes: AedesCalls, clientId: string): Promise<string[]> {
  const topics: string[] = [];
  for await (const packet of aedes.outgoingStream({ id: clientId })) topics.push(packet.topic);
  return topics;
}

test('redis session store - a QoS 1/2 publish no persistent session wants costs no Redis command: the subscriptions are matched in memory', async () => {
  const { aedes, commands } = await store();
  assert.deepEqual(await aedes.subscriptionsByTopic('telemetry/dev-1/temperature'), []);
  await aedes.outgoingEnqueueCombi([], publish('telemetry/dev-1/temperature'));
  assert.deepEqual(commands, []);
});

test('redis session store - persistent subscriptions are in Redis: another instance started later matches them; QoS 0 ones queue nothing', async () => {
  const first = await store();
  const settings = { ...redisPersistence(prefixes.at(-1)) };
  await first.store.persistence.addSubscriptions({ id: 'dev-1' }, [
    { topic: 'cmd/dev-1/#', qos: 1 },
    { topic: 'status/#', qos: 0 },
  ]);
  assert.deepEqual((await first.aedes.subscriptionsByTopic('cmd/dev-1/reboot')).map((sub) => [sub.clientId, sub.topic, sub.qos]), [['dev-1', 'cmd/dev-1/#', 1]]);
  const second = await store({ settings });
  assert.deepEqual((await second.aedes.subscriptionsByTopic('cmd/dev-1/reboot')).map((sub) => [sub.clientId, sub.topic]), [['dev-1', 'cmd/dev-1/#']]);
  assert.deepEqual(await second.aedes.subscriptionsByTopic('status/x'), [], 'a QoS 0 subscription loaded from Redis queues nothing');
  await second.aedes.outgoingEnqueueCombi(await second.aedes.subscriptionsByTopic('cmd/dev-1/reboot'), publish('cmd/dev-1/reboot'));
  assert.deepEqual(await queued(first.aedes, 'dev-1'), ['cmd/dev-1/reboot'], 'queued through one instance, read through the other');
  await first.store.removeSession('dev-1');
  assert.deepEqual(await queued(first.aedes, 'dev-1'), []);
  assert.deepEqual(await second.store.persistence.subscriptionsByClient({ id: 'dev-1' }), []);
});

test('redis session store - the ACL check asks who holds each session, in one round trip for all of them; "$" topics are not queued for "#" or "+/..."', async () => {
  const asked: string[] = [];
  const check = {
    enforced: true,
    mayQueue: (clientId: string, topic: string, holder: { owner: string | null } | undefined) => {
      asked.push(`${clientId} ${holder?.owner ?? 'nobody'} ${topic}`);
      return !topic.includes('secret');
    },
  };
  const made = await store({ mayQueue: check });
  const claimed = await made.store.registry.claim({ clientId: 'dev-1', owner: ownerOf('alice'), persistent: true, maxPersistentSessions: 10 });
  assert.ok(claimed.ok);
  made.commands.length = 0;
  const subs = [
    { clientId: 'dev-1', topic: '#' },
    { clientId: 'dev-1', topic: 'a/+' },
    { clientId: 'dev-2', topic: 'a/#' },
  ];
  await made.aedes.outgoingEnqueueCombi(subs, publish('a/secret'));
  await made.aedes.outgoingEnqueueCombi(subs, publish('a/open'));
  assert.deepEqual(asked, ['dev-1 user:alice a/secret', 'dev-2 nobody a/secret', 'dev-1 user:alice a/open', 'dev-2 nobody a/open'], 'asked once per session');
  assert.deepEqual(made.commands, ['hmget', 'hmget', 'hmget', 'hmget', 'evalsha'], 'per message the holders (one pipeline); one script queues the allowed one for both, none for the refused one');
  await made.aedes.outgoingEnqueueCombi([{ clientId: 'dev-1', topic: '#' }, { clientId: 'dev-3', topic: '$status/#' }], publish('$status/x'));
  assert.deepEqual(await queued(made.aedes, 'dev-1'), ['a/open']);
  assert.deepEqual(await queued(made.aedes, 'dev-2'), ['a/open']);
  assert.deepEqual(await queued(made.aedes, 'dev-3'), ['$status/x']);
  check.enforced = false; // the ACL removed by a reload: nothing to ask, no holder looked up
  made.commands.length = 0;
  await made.aedes.outgoingEnqueueCombi(subs, publish('a/secret/now'));
  assert.deepEqual(made.commands, ['evalsha']);
});

test('redis session store - QoS 2 receive state as aedes uses it: bounded and refused past it, a resend answered from the store, released by PUBREL', async () => {
  const { aedes, refusals } = await store();
  const client = { id: 'q2' };
  const qos2 = (messageId: number) => ({ cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 2, messageId });
  await assert.rejects(aedes.incomingGetPacket(client, qos2(1)), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND' }, 'a new PUBLISH');
  await aedes.incomingStorePacket(client, qos2(1));
  await aedes.incomingStorePacket(client, qos2(2));
  assert.deepEqual(await aedes.incomingGetPacket(client, qos2(1)), { cmd: 'publish', qos: 2, messageId: 1 }, 'a resend is recognised');
  await assert.rejects(aedes.incomingStorePacket(client, qos2(3)), { code: 'BRIDGE_ERR_QOS2_LIMIT' });
  assert.deepEqual(refusals, [['q2', 2 * PENDING_QOS2_ENTRY_BYTES]]);
  await aedes.incomingDelPacket(client, { cmd: 'pubrel', messageId: 1 });
  await assert.rejects(aedes.incomingDelPacket(client, { cmd: 'pubrel', messageId: 1 }), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND' });
  await aedes.incomingStorePacket(client, qos2(3));
});

test('redis session store - with Redis away: a QoS 2 lookup that failed makes its store fail too; a PUBREL closes its client before PUBCOMP; the streams aedes pipes end instead of failing', async () => {
  const made = await store({ withBroker: false });
  const broker = await Aedes.createBroker({ id: uniqueName('broker'), persistence: made.store.persistence as never });
  brokers.push(broker);
  let closed = 0;
  const client = { id: 'away', close: () => closed++ };
  made.redis.disconnect();
  await waitFor(() => made.redis.status === 'end', 'the connection closed');
  const publish2 = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 2, messageId: 5 };
  await assert.rejects(made.aedes.incomingGetPacket(client, publish2));
  await assert.rejects(made.aedes.incomingStorePacket(client, publish2), { code: 'BRIDGE_ERR_REDIS' });
  assert.equal(closed, 0);
  await assert.rejects(made.aedes.incomingGetPacket(client, { cmd: 'pubrel', messageId: 5 }));
  assert.equal(closed, 1, 'no PUBCOMP for a PUBREL whose id Redis still holds');
  await assert.rejects(made.aedes.incomingDelPacket(client, { cmd: 'pubrel', messageId: 5 }));
  assert.equal(closed, 2);
  const retained: unknown[] = [];
  const stream = made.aedes.createRetainedStreamCombi(['a/#', 'b']);
  stream.on('data', (packet) => retained.push(packet));
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const wills: unknown[] = [];
  for await (const will of made.aedes.streamWill({})) wills.push(will);
  assert.deepEqual([retained, wills], [[], []]);
  assert.deepEqual(made.errors, ['the retained messages for a SUBSCRIBE', 'the wills of instances that died']);
  await assert.rejects(made.aedes.outgoingEnqueueCombi([{ clientId: 'x', topic: '#' }], publish('a')), 'a message that cannot be queued fails its publish (a downlink delivery is then requeued)');
});

test('redis session store - a forward that failed and whose QoS 2 id could not be deleted does not answer the resend as a duplicate', async () => {
  const made = await store();
  const client = { id: 'resend' };
  const publish2 = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 2, messageId: 9 };
  await made.aedes.incomingStorePacket(client, publish2);
  made.redis.disconnect();
  await waitFor(() => made.redis.status === 'end', 'the connection closed');
  await assert.rejects(made.aedes.incomingDelPacket(client, publish2)); // the published hook, after RabbitMQ refused it
  await made.redis.connect();
  await assert.rejects(made.aedes.incomingGetPacket(client, publish2), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND' }, 'the resend is new: forwarded again');
  await made.aedes.incomingStorePacket(client, publish2);
  assert.deepEqual(await made.aedes.incomingGetPacket(client, publish2), { cmd: 'publish', qos: 2, messageId: 9 }, 'once taken again, a resend is a duplicate');
  made.store.retryPendingDeletes();
});

test('redis session store - a message arriving live while a returning session\'s queue is sent waits until the queued ones are out (they took two round trips each and were overtaken)', async () => {
  const made = await store();
  const aedes = made.aedes as AedesCalls & { outgoingUpdate(client: object, packet: object): Promise<void> };
  const queuedBefore = [publish('cmd/1'), publish('cmd/2'), publish('cmd/3')];
  for (const packet of queuedBefore) await aedes.outgoingEnqueueCombi([{ clientId: 'back', topic: 'cmd/#' }], packet);
  const stream = aedes.outgoingStream({ id: 'back' }) as unknown as NodeJS.ReadableStream;
  const drained: Array<{ topic: string; brokerId: string; brokerCounter: number }> = [];
  stream.on('data', (packet: { topic: string; brokerId: string; brokerCounter: number }) => drained.push(packet));
  await new Promise((resolve) => stream.once('end', resolve));
  assert.deepEqual(drained.map((packet) => packet.topic), ['cmd/1', 'cmd/2', 'cmd/3']);
  const live = publish('cmd/4');
  await aedes.outgoingEnqueueCombi([{ clientId: 'back', topic: 'cmd/#' }], live);
  const order: string[] = [];
  const liveUpdate = aedes.outgoingUpdate({ id: 'back' }, { ...live, messageId: 40 }).then(() => order.push('cmd/4'));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(order.length, 0, 'the live message waits');
  for (const [i, packet] of drained.entries()) {
    await aedes.outgoingUpdate({ id: 'back' }, { ...packet, messageId: 10 + i });
    order.push(packet.topic);
  }
  await liveUpdate;
  assert.deepEqual(order, ['cmd/1', 'cmd/2', 'cmd/3', 'cmd/4']);
  // No queue being sent: nothing waits.
  const next = publish('cmd/5');
  await aedes.outgoingEnqueueCombi([{ clientId: 'back', topic: 'cmd/#' }], next);
  await aedes.outgoingUpdate({ id: 'back' }, { ...next, messageId: 50 });
});

test('redis session store - a live copy of a message the returning session\'s queue already sent (and its PUBACK cleared): QoS 1 goes on unrecorded, QoS 2 fails so that it is not sent under a second packet id', async () => {
  const made = await store();
  const aedes = made.aedes as AedesCalls & {
    outgoingUpdate(client: object, packet: object): Promise<void>;
    outgoingClearMessageId(client: object, packet: object): Promise<unknown>;
  };
  const persistence = made.aedes as unknown as { connecting(clientId: string): void };
  for (const qos of [1, 2] as const) {
    const clientId = `again-${qos}`;
    const message = publish(`cmd/${qos}`, qos);
    await aedes.outgoingEnqueueCombi([{ clientId, topic: 'cmd/#' }], message);
    // The CONNECT claimed the client id; the message is delivered live before the queue is read.
    persistence.connecting(clientId);
    const live = aedes.outgoingUpdate({ id: clientId }, { ...message, messageId: 70 }).then(
      () => 'sent',
      (error: { code?: string }) => error.code,
    );
    const stream = aedes.outgoingStream({ id: clientId }) as unknown as NodeJS.ReadableStream;
    const drained: Array<typeof message> = [];
    stream.on('data', (packet: typeof message) => drained.push(packet));
    await new Promise((resolve) => stream.once('end', resolve));
    assert.deepEqual(drained.map((packet) => packet.topic), [`cmd/${qos}`], 'the queue holds it');
    await aedes.outgoingUpdate({ id: clientId }, { ...drained[0]!, messageId: 7 });
    await aedes.outgoingClearMessageId({ id: clientId }, { messageId: 7 });
    assert.equal(await live, qos === 1 ? 'sent' : 'BRIDGE_ERR_PACKET_NOT_FOUND');
    assert.deepEqual(await queued(aedes, clientId), [], 'nothing left queued');
  }
});

test('redis session store - a PUBACK from a clean session costs no Redis command (nothing sent to it is recorded); a queued message cleared for one still is', async () => {
  const made = await store();
  const aedes = made.aedes as AedesCalls & { outgoingClearMessageId(client: object, packet: object): Promise<unknown> };
  made.commands.length = 0;
  assert.equal(await aedes.outgoingClearMessageId({ id: 'clean', clean: true }, { cmd: 'puback', messageId: 3 }), undefined);
  assert.deepEqual(made.commands, []);
  const message = publish('cmd/clean');
  await aedes.outgoingEnqueueCombi([{ clientId: 'was-persistent', topic: 'cmd/#' }], message);
  made.commands.length = 0;
  await aedes.outgoingClearMessageId({ id: 'was-persistent', clean: true }, message);
  assert.ok(made.commands.length > 0, 'a queued message is cleared in Redis');
  assert.deepEqual(await queued(aedes, 'was-persistent'), []);
});
