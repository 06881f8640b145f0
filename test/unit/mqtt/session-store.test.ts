import assert from 'node:assert/strict';
import { test } from 'node:test';
import Packet from 'aedes-packet';
import AsyncMemoryPersistence from 'aedes-persistence/asyncPersistence.js';
import { PENDING_QOS2_ENTRY_BYTES } from '../../../src/config/schema.js';
import { createSessionStore } from '../../../src/mqtt/session-store.js';

/** The calls aedes makes on its persistence that these tests exercise. */
interface AedesCalls {
  setup(broker: unknown): Promise<void>;
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>>;
  cleanSubscriptions(client: { id: string }): Promise<void>;
  incomingStorePacket(client: { id: string }, packet: Packet): Promise<void>;
  incomingGetPacket(client: { id: string }, packet: { messageId: number }): Promise<Packet>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string; topic?: string }>, packet: Packet): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId: number }): Promise<Packet | undefined>;
  outgoingStream(client: { id: string }): AsyncIterable<Packet>;
}

function store(maxOfflineMessages = 10) {
  const dropped: string[] = [];
  const sessions = createSessionStore({ maxOfflineMessages, onDropped: (clientId) => dropped.push(clientId) });
  return { sessions, aedes: sessions.persistence as unknown as AedesCalls, dropped };
}

const publish = (topic: string, brokerCounter: number) =>
  new Packet({ cmd: 'publish', topic, payload: Buffer.from(topic), qos: 1, retain: false, brokerId: 'b', brokerCounter });

test("session store - aedes' own persistence state works through it (subscriptions, QoS 2 receive state)", async () => {
  const { sessions, aedes } = store();
  await aedes.setup({ id: 'broker' });
  await sessions.persistence.addSubscriptions({ id: 'dev-1' }, [{ topic: 'cmd/#', qos: 1 }]);
  assert.deepEqual(
    (await aedes.subscriptionsByTopic('cmd/x')).map(({ clientId, topic, qos }) => ({ clientId, topic, qos })),
    [{ clientId: 'dev-1', topic: 'cmd/#', qos: 1 }],
  );
  assert.deepEqual(sessions.persistentClientIds(), ['dev-1']);
  // As aedes passes it: the PUBLISH as parsed, with its packet id; what it reads back is the id.
  await aedes.incomingStorePacket({ id: 'dev-1' }, { cmd: 'publish', topic: 't', payload: Buffer.from('p'), qos: 2, messageId: 3 } as Packet);
  assert.equal((await aedes.incomingGetPacket({ id: 'dev-1' }, { messageId: 3 })).messageId, 3);
  await aedes.cleanSubscriptions({ id: 'dev-1' });
  assert.deepEqual(sessions.persistentClientIds(), []);
  assert.deepEqual(await aedes.subscriptionsByTopic('cmd/x'), []);
});

test('session store - with no persistent session, a publish looks up no subscriber and queues nothing; one that subscribes is found, and forgotten when it cleans', async () => {
  const { sessions, aedes } = store();
  await aedes.setup({ id: 'broker' });
  assert.deepEqual(await aedes.subscriptionsByTopic('cmd/x'), []);
  await aedes.outgoingEnqueueCombi([], publish('cmd/x', 1));
  assert.deepEqual(sessions.queues.clientIds(), []);
  await sessions.persistence.addSubscriptions({ id: 'dev-1' }, [{ topic: 'cmd/#', qos: 1 }]);
  const subscribers = await aedes.subscriptionsByTopic('cmd/x');
  assert.deepEqual(subscribers.map(({ clientId }) => clientId), ['dev-1']);
  await aedes.outgoingEnqueueCombi(subscribers, publish('cmd/x', 2));
  assert.deepEqual(sessions.queues.snapshot('dev-1').map((packet) => packet.brokerCounter), [2]);
  await aedes.cleanSubscriptions({ id: 'dev-1' });
  assert.deepEqual(await aedes.subscriptionsByTopic('cmd/x'), []);
  // An answer shared between calls cannot be changed by one caller for the next.
  const none = await aedes.subscriptionsByTopic('cmd/x');
  assert.throws(() => none.push({ clientId: 'intruder', topic: '#', qos: 1 }), TypeError);
  assert.deepEqual(await aedes.subscriptionsByTopic('cmd/x'), []);
});

test('session store - an unknown QoS 2 packet id is refused every time without an unhandled rejection', async () => {
  const { aedes } = store();
  const unhandled: unknown[] = [];
  const record = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', record);
  try {
    for (let i = 0; i < 3; i++) {
      await assert.rejects(aedes.incomingGetPacket({ id: 'dev-1' }, { messageId: 9 }), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND' });
    }
    void aedes.incomingGetPacket({ id: 'dev-2' }, { messageId: 1 }); // a caller that never looks at the answer
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('unhandledRejection', record);
  }
  assert.deepEqual(unhandled, []);
});

/** The function a class on `object`'s prototype chain defines for `name`: what a plain method read gives. */
function methodOfClass(object: object, name: string): unknown {
  for (let prototype = Object.getPrototypeOf(object) as object | null; prototype; prototype = Object.getPrototypeOf(prototype) as object | null) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
    if (descriptor) return descriptor.value;
  }
  return undefined;
}

test("session store - aedes reads the classes' own methods, not copies bound per read or per instance (no allocation per call)", () => {
  const { sessions } = store();
  const persistence = sessions.persistence as unknown as Record<string, unknown>;
  // aedes' own method, inherited as it is; and the store's overrides, from its class.
  assert.equal(persistence.subscriptionsByClient, (AsyncMemoryPersistence.prototype as unknown as Record<string, unknown>).subscriptionsByClient);
  for (const name of ['subscriptionsByTopic', 'incomingStorePacket', 'incomingGetPacket', 'outgoingEnqueueCombi', 'outgoingUpdate', 'outgoingStream']) {
    assert.equal(typeof persistence[name], 'function', name);
    assert.equal(persistence[name], methodOfClass(persistence, name), `${name} is the class's own function`);
    assert.equal(Object.hasOwn(persistence, name), false, `${name} is not a per-instance copy`);
  }
});

test('session store - outgoing messages go to the bounded queues: oldest unsent dropped, cleared by packet id', async () => {
  const { sessions, aedes, dropped } = store(2);
  for (const [index, topic] of ['a', 'b', 'c'].entries()) await aedes.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish(topic, index));
  assert.deepEqual(dropped, ['dev-1']);
  const streamed: string[] = [];
  for await (const packet of aedes.outgoingStream({ id: 'dev-1' })) streamed.push(packet.topic);
  assert.deepEqual(streamed, ['b', 'c']);
  assert.deepEqual(sessions.queues.clientIds(), ['dev-1']);
  assert.equal(await aedes.outgoingClearMessageId({ id: 'dev-1' }, { messageId: 9 }), undefined, 'no message was sent with id 9');
});

/** The QoS 2 calls aedes makes, with the PUBLISH it parsed (packet id and payload). */
interface Qos2Calls {
  incomingStorePacket(client: { id: string }, packet: { cmd: string; messageId: number; payload: Buffer }): Promise<void>;
  incomingGetPacket(client: { id: string }, packet: { cmd: string; messageId: number; payload?: Buffer }): Promise<{ messageId: number }>;
  incomingDelPacket(client: { id: string }, packet: { messageId: number }): Promise<void>;
  cleanIncoming(client: { id: string }): Promise<void>;
}

function qos2Store(maxPendingQos2BytesPerSession: number) {
  const refusals: Array<[string, number]> = [];
  const notStored: unknown[] = [];
  const sessions = createSessionStore({
    maxOfflineMessages: 10,
    onDropped: () => {},
    maxPendingQos2BytesPerSession,
    onQos2Refused: (clientId, held) => refusals.push([clientId, held]),
    retained: { stored: async () => {}, notStored: (packet) => notStored.push(packet) },
  });
  return { sessions, aedes: sessions.persistence as unknown as Qos2Calls, refusals, notStored };
}

const qos2Publish = (messageId: number) => ({ cmd: 'publish', messageId, payload: Buffer.alloc(60_000) });

test('session store - QoS 2 state keeps the packet id only, bounded in bytes per session; PUBREL and cleanIncoming free it', async () => {
  const { sessions, aedes, refusals, notStored } = qos2Store(3 * PENDING_QOS2_ENTRY_BYTES);
  for (const id of [1, 2, 3]) await aedes.incomingStorePacket({ id: 'dev-1' }, qos2Publish(id));
  assert.equal(sessions.pendingQos2.bytesOf('dev-1'), 3 * PENDING_QOS2_ENTRY_BYTES);
  const fourth = qos2Publish(4);
  await assert.rejects(aedes.incomingStorePacket({ id: 'dev-1' }, fourth), { code: 'BRIDGE_ERR_QOS2_LIMIT', message: /holds 96 bytes of QoS 2 messages awaiting PUBREL/ });
  assert.deepEqual(refusals, [['dev-1', 96]]);
  assert.deepEqual(notStored, [fourth], 'a retained publish refused here gives back its room');
  await assert.rejects(aedes.incomingGetPacket({ id: 'dev-1' }, { cmd: 'publish', messageId: 4 }), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND', message: 'no such packet' });
  await aedes.incomingStorePacket({ id: 'dev-2' }, qos2Publish(4)); // another session has its own bound
  // A resent PUBLISH is recognised by its id (and is not stored again); a PUBREL deletes it.
  const resent = qos2Publish(2);
  assert.equal((await aedes.incomingGetPacket({ id: 'dev-1' }, resent)).messageId, 2);
  assert.deepEqual(notStored.at(-1), resent);
  await aedes.incomingStorePacket({ id: 'dev-1' }, qos2Publish(2));
  assert.equal(sessions.pendingQos2.bytesOf('dev-1'), 3 * PENDING_QOS2_ENTRY_BYTES, 'the same id stored again counts once');
  await aedes.incomingDelPacket({ id: 'dev-1' }, { messageId: 2 });
  await assert.rejects(aedes.incomingDelPacket({ id: 'dev-1' }, { messageId: 2 }), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND', message: 'no such packet' });
  await aedes.incomingStorePacket({ id: 'dev-1' }, qos2Publish(5));
  await aedes.cleanIncoming({ id: 'dev-1' });
  assert.equal(sessions.pendingQos2.bytesOf('dev-1'), 0);
  await assert.rejects(aedes.incomingGetPacket({ id: 'dev-1' }, { cmd: 'pubrel', messageId: 1 }), { code: 'BRIDGE_ERR_PACKET_NOT_FOUND', message: 'no such packet' });
  assert.equal(sessions.pendingQos2.sessions, 1, 'only dev-2 holds QoS 2 state');
});

test('session store - every retained message stored is told to the accounting, a restored one with its owner', async () => {
  const told: Array<[string, string, unknown]> = [];
  const sessions = createSessionStore({
    maxOfflineMessages: 10,
    onDropped: () => {},
    retained: { stored: async (packet, owner) => void told.push([packet.topic, packet.payload.toString(), owner]), notStored: () => {} },
    retainedOwnerOf: () => ({ username: 'alice' }),
  });
  await sessions.persistence.storeRetained(new Packet({ cmd: 'publish', topic: 'a', payload: Buffer.from('1'), qos: 0, retain: true }));
  await sessions.restoreRetained(new Packet({ cmd: 'publish', topic: 'b', payload: Buffer.from('2'), qos: 0, retain: true }), { username: 'bob' });
  assert.deepEqual(told, [
    ['a', '1', undefined],
    ['b', '2', { username: 'bob' }],
  ]);
  const stored: string[] = [];
  for await (const packet of sessions.persistence.createRetainedStream('#')) stored.push(packet.topic);
  assert.deepEqual(stored.sort(), ['a', 'b']);
  assert.deepEqual(sessions.retainedOwner('a'), { username: 'alice' });
});

test('session store - a message the client may not receive is not queued for it, refused once however many of its filters match; a "$" topic is not queued for "#" or "+/..." [MQTT-4.7.2-1]', async () => {
  const asked: string[] = [];
  const sessions = createSessionStore({
    maxOfflineMessages: 2,
    onDropped: () => assert.fail('nothing denied takes the place of an allowed message'),
    mayQueue: {
      enforced: true,
      mayQueue: (clientId, topic) => {
        asked.push(`${clientId} ${topic}`);
        return !topic.includes('secret');
      },
    },
  });
  const aedes = sessions.persistence as unknown as AedesCalls;
  // aedes passes one subscription per matching filter: dev-1 holds two that match.
  const subs = [
    { clientId: 'dev-1', topic: '#' },
    { clientId: 'dev-1', topic: 'a/+' },
    { clientId: 'dev-2', topic: 'a/#' },
  ];
  for (let i = 0; i < 4; i++) await aedes.outgoingEnqueueCombi(subs, publish('a/secret', i));
  await aedes.outgoingEnqueueCombi(subs, publish('a/open', 10));
  await aedes.outgoingEnqueueCombi([{ clientId: 'dev-1', topic: '#' }, { clientId: 'dev-2', topic: '+/x' }, { clientId: 'dev-3', topic: '$status/#' }], publish('$status/x', 11));
  assert.deepEqual(asked.filter((line) => line.startsWith('dev-1 a/secret')).length, 4, 'refused once per message for dev-1, whose two filters match it');
  assert.deepEqual(asked.slice(-1), ['dev-3 $status/x'], 'only the subscription that names "$status" is asked for the "$" topic');
  const queued = async (clientId: string) => {
    const topics: string[] = [];
    for await (const packet of aedes.outgoingStream({ id: clientId })) topics.push(packet.topic);
    return topics;
  };
  assert.deepEqual(await queued('dev-1'), ['a/open', 'a/open'], 'two matching filters: queued twice, as aedes does');
  assert.deepEqual(await queued('dev-2'), ['a/open']);
  assert.deepEqual(await queued('dev-3'), ['$status/x']);
});

test('session store - a message not sent yet is cleared by its broker id, not by the absent packet id', async () => {
  // aedes clears a message authorizeForward refused with the packet it was given, which has no
  // packet id: matching on that removed the first unsent message, and sending that one then failed.
  const { aedes } = store();
  for (const [index, topic] of ['allowed-1', 'denied', 'allowed-2'].entries()) await aedes.outgoingEnqueueCombi([{ clientId: 'dev-1' }], publish(topic, index));
  const cleared = await aedes.outgoingClearMessageId({ id: 'dev-1' }, { brokerId: 'b', brokerCounter: 1 } as unknown as { messageId: number });
  assert.equal(cleared?.topic, 'denied');
  assert.equal(await aedes.outgoingClearMessageId({ id: 'dev-1' }, { brokerId: 'b', brokerCounter: 1 } as unknown as { messageId: number }), undefined, 'gone');
  const left: string[] = [];
  for await (const packet of aedes.outgoingStream({ id: 'dev-1' })) left.push(packet.topic);
  assert.deepEqual(left, ['allowed-1', 'allowed-2']);
});
