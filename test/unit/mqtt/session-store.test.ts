import assert from 'node:assert/strict';
import { test } from 'node:test';
import Packet from 'aedes-packet';
import { createSessionStore } from '../../../src/mqtt/session-store.js';

/** The calls aedes makes on its persistence that these tests exercise. */
interface AedesCalls {
  setup(broker: unknown): Promise<void>;
  subscriptionsByTopic(topic: string): Promise<Array<{ clientId: string; topic: string; qos: number }>>;
  cleanSubscriptions(client: { id: string }): Promise<void>;
  incomingStorePacket(client: { id: string }, packet: Packet): Promise<void>;
  incomingGetPacket(client: { id: string }, packet: { messageId: number }): Promise<Packet>;
  outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: Packet): Promise<void>;
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
  // As aedes passes it: the PUBLISH as parsed, with its packet id.
  await aedes.incomingStorePacket({ id: 'dev-1' }, { cmd: 'publish', topic: 't', payload: Buffer.from('p'), qos: 2, messageId: 3 } as Packet);
  assert.equal((await aedes.incomingGetPacket({ id: 'dev-1' }, { messageId: 3 })).topic, 't');
  await aedes.cleanSubscriptions({ id: 'dev-1' });
  assert.deepEqual(sessions.persistentClientIds(), []);
  assert.deepEqual(await aedes.subscriptionsByTopic('cmd/x'), []);
});

test('session store - reading a method gives the same function every time (no allocation per call aedes makes)', () => {
  const { aedes } = store();
  assert.equal(aedes.subscriptionsByTopic, aedes.subscriptionsByTopic);
  assert.equal(aedes.incomingStorePacket, aedes.incomingStorePacket);
  assert.equal(aedes.outgoingEnqueueCombi, aedes.outgoingEnqueueCombi);
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
