import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import mqtt from 'mqtt';
import { createAuthorizeForward, createQueueCheck } from '../../../src/mqtt/hooks/authorize-forward.js';
import { ownerOf, type SessionHolder } from '../../../src/mqtt/session-registry.js';

function clientWith(subscriptions: Record<string, number>): Client {
  const held = Object.create(null) as Record<string, { qos: number }>;
  for (const [filter, qos] of Object.entries(subscriptions)) held[filter] = { qos };
  return { id: 'c', subscriptions: held } as unknown as Client;
}

const publish = (topic: string, qos: 0 | 1 | 2) => ({ cmd: 'publish', topic, qos, payload: Buffer.from('x'), retain: false, dup: false }) as AedesPublishPacket;

test('authorizeForward - a message gets the highest QoS granted to a matching filter, never more than it was published with', () => {
  const forward = createAuthorizeForward();
  const cases: Array<[Record<string, number>, string, 0 | 1 | 2, number]> = [
    [{ 'a/#': 1 }, 'a/b', 2, 1],
    [{ 'a/#': 0, 'a/+': 1 }, 'a/b', 2, 1],
    [{ 'a/#': 0, '+/b': 2 }, 'a/b', 2, 2],
    [{ 'a/#': 0 }, 'a/b', 1, 0],
    [{ 'a/#': 2 }, 'a/b', 1, 1],
    [{ 'a/#': 0, 'b/#': 0 }, 'a/b', 0, 0],
    [{ 'x/#': 0 }, 'a/b', 2, 2], // no filter matches: left as it is
    [{ '#': 0 }, '$SYS/x', 1, 1], // "#" does not match a "$" topic [MQTT-4.7.2-1]
  ];
  for (const [subscriptions, topic, qos, expected] of cases) {
    const packet = publish(topic, qos);
    const forwarded = forward(clientWith(subscriptions), packet);
    assert.equal(forwarded, packet, 'the packet aedes handed over, lowered in place');
    assert.equal(packet.qos, expected, `${JSON.stringify(subscriptions)} ${topic} at QoS ${qos}`);
  }
});

test('authorizeForward - a topic the receiving client\'s ACL does not let it subscribe to is not delivered, and reported', () => {
  const denied: string[] = [];
  const forward = createAuthorizeForward({
    access: {
      enforced: true,
      canPublish: () => true,
      canSubscribe: ({ username }, topic) => topic.startsWith(`devices/${username}/`),
      onDeniedPublish: 'disconnect',
      denied: () => assert.fail('the hook reports through its own callback'),
    },
    usernameOf: () => 'alice',
    denied: (client, topic) => denied.push(`${client.id} ${topic}`),
  });
  const mine = publish('devices/alice/commands/x', 1);
  assert.equal(forward(clientWith({ '#': 1 }), mine), mine);
  assert.equal(forward(clientWith({ '#': 1 }), publish('devices/bob/commands/x', 1)), null);
  assert.deepEqual(denied, ['c devices/bob/commands/x']);
});

test('authorizeForward - with aedes, one QoS 2 message reaches each wildcard subscriber at the QoS it was granted', async (t) => {
  const broker = await Aedes.createBroker({ authorizeForward: createAuthorizeForward() });
  const server = createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const connect = () => mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
  const clients = await Promise.all([connect(), connect(), connect(), connect()]);
  t.after(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    server.close();
  });
  const [low, high, zero, publisher] = clients;
  // The lowest grant subscribes first: were the packet shared, lowering it would reach the others.
  await low.subscribeAsync('plant/#', { qos: 1 });
  await high.subscribeAsync('plant/+/temp', { qos: 2 });
  await zero.subscribeAsync('+/+/temp', { qos: 0 });
  const received = (client: mqtt.MqttClient) =>
    new Promise<number>((resolve) => client.once('message', (_topic, _payload, packet) => resolve(packet.qos)));
  const delivered = Promise.all([received(low), received(high), received(zero)]);
  await publisher.publishAsync('plant/7/temp', '21.5', { qos: 2 });
  assert.deepEqual(await delivered, [1, 2, 0]);
});

test('queue check - a message for an offline session is asked with its owner\'s identity, and a denied one reported once; a connected client\'s is left to authorizeForward', () => {
  const reported: string[] = [];
  const asked: string[] = [];
  const holders: Record<string, SessionHolder> = {
    'alice-1': { owner: ownerOf('alice'), connected: false },
    'anon-1': { owner: ownerOf(undefined), connected: false },
    'alice-2': { owner: ownerOf('alice'), connected: true },
    'restored-1': { owner: null, connected: false },
  };
  const check = createQueueCheck(
    {
      enforced: true,
      canPublish: () => assert.fail('only receiving is asked'),
      canSubscribe: ({ clientId, username }, topic) => {
        asked.push(`${clientId} ${username ?? '(anonymous)'} ${topic}`);
        return topic.startsWith(`devices/${username}/`);
      },
      onDeniedPublish: 'disconnect',
      denied: (action, clientId, topic) => reported.push(`${action} ${clientId} ${topic}`),
    },
  );
  const ask = (clientId: string, topic: string) => check.mayQueue(clientId, topic, holders[clientId]);
  assert.equal(ask('alice-1', 'devices/alice/commands/x'), true);
  assert.equal(ask('alice-1', 'devices/bob/commands/x'), false);
  assert.equal(ask('anon-1', 'devices/alice/commands/x'), false);
  assert.equal(ask('alice-2', 'devices/bob/commands/x'), true, 'connected: queued, and authorizeForward refuses it as it is sent');
  assert.equal(ask('restored-1', 'devices/bob/commands/x'), true, 'owner unknown: checked when it is sent');
  assert.equal(ask('unknown', 'devices/bob/commands/x'), true, 'no session recorded: checked when it is sent');
  assert.deepEqual(asked, ['alice-1 alice devices/alice/commands/x', 'alice-1 alice devices/bob/commands/x', 'anon-1 (anonymous) devices/alice/commands/x']);
  assert.deepEqual(reported, ['deliver alice-1 devices/bob/commands/x', 'deliver anon-1 devices/alice/commands/x']);
});

test('authorizeForward - a publish reaches a client once however many of its subscriptions match; publishes out of counter order all arrive', () => {
  const forward = createAuthorizeForward();
  const client = clientWith({ 'a/#': 1, 'a/+': 1 });
  const copy = (counter: number) => ({ ...publish('a/b', 1), brokerId: 'broker-1', brokerCounter: counter });
  assert.notEqual(forward(client, copy(11)), null);
  assert.equal(forward(client, copy(11)), null, 'the second subscription\'s copy');
  assert.notEqual(forward(client, copy(10)), null, 'an older publish that arrived later is not a duplicate');
  assert.notEqual(forward(client, { ...copy(11), brokerId: 'broker-2' }), null, 'another broker\'s counter');
  assert.notEqual(forward(clientWith({ 'a/#': 1 }), copy(11)), null, 'another client');
  assert.notEqual(forward(client, { ...publish('a/b', 1), brokerId: null as unknown as string, brokerCounter: 0 }), null, 'a retained message (no broker id)');
});
