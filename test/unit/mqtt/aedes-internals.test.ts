import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import mqttPacket from 'mqtt-packet';
import { checkAedesInternals, clientParser, connectedClients, disableCounterDedupe, heldSubscriptions, pendingWill, screenPackets, withholdSuback } from '../../../src/mqtt/aedes-internals.js';
import { createSessionStore } from '../../../src/mqtt/session-store.js';

/** A real aedes with one client over an in-memory duplex: `send` writes packets to it, `received` holds what it answered. */
async function connectedBroker(onAuthenticate: (client: Client) => void = () => {}, options: Partial<AedesOptions> = {}) {
  const broker = await Aedes.createBroker({
    authenticate: (client, _username, _password, done) => {
      onAuthenticate(client);
      done(null, true);
    },
    ...options,
  });
  const received: mqttPacket.Packet[] = [];
  const parser = mqttPacket.parser();
  parser.on('packet', (packet) => received.push(packet));
  const connection = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      parser.parse(chunk);
      callback();
    },
  });
  const client = broker.handle(connection, undefined);
  const send = (packet: Record<string, unknown>) => connection.push(mqttPacket.generate(packet as unknown as mqttPacket.Packet));
  const sendRaw = (bytes: Buffer) => connection.push(bytes);
  return { broker, client, connection, received, send, sendRaw };
}

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(condition(), 'condition not met in time');
};

test('aedes internals - the installed aedes has everything the bridge relies on', async () => {
  const broker = await Aedes.createBroker();
  try {
    assert.doesNotThrow(() => checkAedesInternals(broker));
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test('aedes internals - a broker without them fails the check with BRIDGE_ERR_DEPENDENCY naming what is missing', async () => {
  const broker = await Aedes.createBroker();
  try {
    const stripped = Object.create(broker) as Aedes;
    Object.defineProperty(stripped, 'clients', { value: undefined });
    assert.throws(() => checkAedesInternals(stripped), (error: Error & { code?: string }) => error.code === 'BRIDGE_ERR_DEPENDENCY' && /broker\.clients/.test(error.message) && /aedes \d/.test(error.message));
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test('aedes internals - a client parser whose packets aedes no longer handles through one listener fails the check', async () => {
  const broker = await Aedes.createBroker();
  try {
    const changed = Object.create(broker) as Aedes;
    changed.handle = ((...args: Parameters<Aedes['handle']>) => {
      const client = broker.handle(...args);
      (clientParser(client) as unknown as { removeAllListeners(event: string): void }).removeAllListeners('packet');
      return client;
    });
    assert.throws(() => checkAedesInternals(changed), (error: Error & { code?: string }) => error.code === 'BRIDGE_ERR_DEPENDENCY' && /'packet' handler/.test(error.message));
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test('aedes internals - the will is readable during authenticate, subscriptions and clients once connected, and the parser takes raw bytes', async () => {
  let willSeen: ReturnType<typeof pendingWill> = null;
  const { broker, client, received, send } = await connectedBroker((authenticating) => {
    willSeen = pendingWill(authenticating);
  });
  try {
    assert.equal(typeof clientParser(client).parse, 'function');
    send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'probe', keepalive: 0, will: { topic: 'probe/status', payload: Buffer.from('gone'), qos: 1, retain: false } });
    await until(() => received.some((packet) => packet.cmd === 'connack'));
    assert.equal(willSeen!.topic, 'probe/status');
    assert.deepEqual(connectedClients(broker).map((connected) => connected.id), ['probe']);
    send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/+', qos: 1 }] });
    await until(() => received.some((packet) => packet.cmd === 'suback'));
    assert.equal(heldSubscriptions(client)['a/+']?.qos, 1);
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test('aedes internals - a screened packet reaches aedes only when the screen passes it, and malformed bytes are reported', async () => {
  const { broker, client, connection, received, send, sendRaw } = await connectedBroker();
  const seen: string[] = [];
  const malformed: string[] = [];
  let dropPings = true;
  screenPackets(client, {
    pass: (packet) => {
      seen.push(packet.cmd);
      return !(dropPings && packet.cmd === 'pingreq');
    },
    malformed: (error) => malformed.push(error.message),
  });
  try {
    send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'screened', keepalive: 0 });
    await until(() => received.some((packet) => packet.cmd === 'connack'));
    send({ cmd: 'pingreq' });
    send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }] });
    await until(() => received.some((packet) => packet.cmd === 'suback'));
    assert.equal(received.filter((packet) => packet.cmd === 'pingresp').length, 0, 'the dropped PINGREQ got no answer');
    dropPings = false;
    send({ cmd: 'pingreq' });
    await until(() => received.some((packet) => packet.cmd === 'pingresp'));
    assert.deepEqual(seen, ['connect', 'pingreq', 'subscribe', 'pingreq']);
    sendRaw(Buffer.from([0xc1, 0x00])); // a PINGREQ with a reserved flag bit set [MQTT-2.2.2-2]
    await until(() => malformed.length === 1 && connection.destroyed);
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test('aedes internals - a SUBSCRIBE whose SUBACK is withheld is granted and held, reported in the subscribe event with what was granted, and not answered', async () => {
  const { broker, client, received, send } = await connectedBroker();
  const events: Array<{ ofThePacket: boolean; subscriptions: Array<{ topic: string; qos: number }> }> = [];
  let screened: { subscriptions?: unknown } | null = null;
  screenPackets(client, {
    pass: (parsed) => {
      if (parsed.cmd === 'subscribe') {
        screened = parsed as { subscriptions?: unknown };
        withholdSuback(parsed as never);
      }
      return true;
    },
    malformed: () => {},
  });
  broker.on('subscribe', (subscriptions, subscriber) => {
    if (subscriber !== client) return;
    // The event carries the packet's own (merged) list: how the bridge tells which SUBSCRIBE it reports.
    events.push({ ofThePacket: subscriptions === screened?.subscriptions, subscriptions: subscriptions.map(({ topic, qos }) => ({ topic, qos })) });
  });
  try {
    send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'withheld', keepalive: 0 });
    await until(() => received.some((answer) => answer.cmd === 'connack'));
    send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'a', qos: 1 }, { topic: 'b', qos: 0 }, { topic: 'a', qos: 2 }] });
    await until(() => events.length === 1);
    assert.equal(events[0]!.ofThePacket, true);
    // aedes merges a repeated filter, keeping its last QoS: what the bridge's own SUBACK builds on.
    assert.deepEqual(events[0]!.subscriptions, [{ topic: 'a', qos: 2 }, { topic: 'b', qos: 0 }]);
    assert.equal(heldSubscriptions(client)['a']?.qos, 2);
    send({ cmd: 'pingreq' });
    await until(() => received.some((answer) => answer.cmd === 'pingresp'));
    assert.equal(received.filter((answer) => answer.cmd === 'suback').length, 0);
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test("aedes internals - what the retained and QoS 2 accounting relies on: the stored packet keeps the PUBLISH's payload Buffer, a resend is looked up with its own PUBLISH and stored nowhere, and a packet id is all aedes reads back", async () => {
  const authorized: Buffer[] = [];
  const stored: Buffer[] = [];
  const notStored: unknown[] = [];
  const sessions = createSessionStore({
    maxOfflineMessages: 10,
    onDropped: () => {},
    retained: { stored: async (packet) => void stored.push(packet.payload), notStored: (packet) => notStored.push(packet.payload) },
  });
  const { broker, received, send } = await connectedBroker(() => {}, {
    persistence: sessions.persistence,
    authorizePublish: (_client, packet, done) => {
      authorized.push(packet.payload as Buffer);
      done(null);
    },
  });
  try {
    send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: 'probe', keepalive: 0 });
    await until(() => received.some((packet) => packet.cmd === 'connack'));
    send({ cmd: 'publish', topic: 'a/1', payload: Buffer.from('q1'), qos: 1, messageId: 1, retain: true });
    await until(() => stored.length === 1);
    assert.equal(stored[0], authorized[0], 'the very Buffer authorizePublish saw');
    send({ cmd: 'publish', topic: 'a/2', payload: Buffer.from('q2'), qos: 2, messageId: 2, retain: true });
    await until(() => received.some((packet) => packet.cmd === 'pubrec' && packet.messageId === 2));
    assert.equal(stored[1], authorized[1]);
    assert.equal(sessions.pendingQos2.bytesOf('probe') > 0, true, 'kept until PUBREL');
    send({ cmd: 'publish', topic: 'a/2', payload: Buffer.from('q2'), qos: 2, messageId: 2, retain: true, dup: true });
    await until(() => received.filter((packet) => packet.cmd === 'pubrec').length === 2);
    assert.equal(stored.length, 2, 'the resend is not stored again');
    assert.deepEqual(notStored, [authorized[2]], 'looked up with the resent PUBLISH itself');
    send({ cmd: 'pubrel', messageId: 2 });
    await until(() => received.some((packet) => packet.cmd === 'pubcomp' && packet.messageId === 2));
    assert.equal(sessions.pendingQos2.bytesOf('probe'), 0);
  } finally {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  }
});

test('aedes internals - aedes drops a publish whose counter is below one the client had; with the counter check off, it arrives', async () => {
  for (const disabled of [false, true]) {
    const { broker, client, received, send } = await connectedBroker();
    if (disabled) disableCounterDedupe(client);
    try {
      send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `counter-${disabled}`, keepalive: 0 });
      await until(() => received.some((packet) => packet.cmd === 'connack'));
      send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/+', qos: 0 }] });
      await until(() => received.some((packet) => packet.cmd === 'suback'));
      // Emitted as publishes that overtook each other on their way are: counter 11, then 10; then 12, a marker.
      const emitter = (broker as unknown as { mq: { emit(packet: unknown, done: () => void): void } }).mq;
      for (const counter of [11, 10, 12]) {
        await new Promise<void>((resolve) => emitter.emit({ cmd: 'publish', topic: 'a/b', payload: Buffer.from(String(counter)), qos: 0, retain: false, dup: false, brokerId: 'another', brokerCounter: counter }, resolve));
      }
      const payloads = () => received.filter((packet) => packet.cmd === 'publish').map((packet) => String((packet as { payload: Buffer }).payload));
      await until(() => payloads().includes('12'));
      assert.deepEqual(payloads(), disabled ? ['11', '10', '12'] : ['11', '12'], disabled ? 'all arrive' : 'aedes drops the older counter');
    } finally {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    }
  }
});
