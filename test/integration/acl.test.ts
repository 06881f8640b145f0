import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { hashPassword } from '../../src/auth/passwords.js';
import { deleteExchanges, publishConfirmed, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, transientExchange, type TestBridge, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import { captureLogs } from '../helpers/log-capture.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

// Issue 11: a SUBSCRIBE is refused only for a filter a deny entry covers (or no allow entry
// covers); a broader filter is granted and every delivery is checked against the receiver's ACL.

const uplink = uniqueName('acl-up');
const commands = uniqueName('acl-commands');
const commandQueue = uniqueName('acl-commands-q');
const logs = captureLogs('info');
const PASSWORDS = { alice: 'alice-secret-1', bob: 'bob-secret-2' };

/** The example, with a deny of a subtree added: anonymous clients, one ACL for all. */
let open: TestBridge;
/** Named users whose entries use {username} and {clientId}. */
let named: TestBridge;

before(async () => {
  const forward = { uplink: [{ name: 'all', topic: '#', exchange: uplink, routingKey: '{#}' }] };
  open = await startTestBridge(
    {
      ...forward,
      amqp: { exchanges: [transientExchange(uplink), transientExchange(commands)] },
      downlink: [{ name: 'commands', exchange: commands, routingKey: '{deviceId}.#', topic: 'devices/{deviceId}/{#}', qos: 1, queueName: commandQueue }],
      auth: { anonymous: true },
      acl: [
        { deny: 'subscribe', topic: 'test/nosubscribe' },
        { deny: 'subscribe', topic: 'devices/+/secrets/#' },
        { allow: ['publish', 'subscribe'], topic: '#' },
      ],
    },
    { logger: logs.logger },
  );
  named = await startTestBridge({
    ...forward,
    amqp: { exchanges: [transientExchange(uplink)] },
    auth: {
      users: await Promise.all(Object.entries(PASSWORDS).map(async ([username, password]) => ({ username, password: await hashPassword(password) }))),
      clientIds: ['{username}-*'],
    },
    acl: [
      { allow: 'subscribe', topic: 'users/{username}/#' },
      { allow: 'subscribe', topic: 'clients/{clientId}/#' },
      { deny: 'subscribe', topic: 'users/#' },
      { deny: 'subscribe', topic: 'clients/#' },
      { allow: ['publish', 'subscribe'], topic: '#' },
    ],
  });
});

after(async () => {
  await open?.stop();
  await named?.stop();
  await withChannel((channel) => channel.deleteQueue(commandQueue)).catch(() => {});
  await deleteExchanges(uplink, commands);
});

/** Topics published in each case; the denied ones are in a denied area for every client of `open`. */
const TOPICS = ['test/nosubscribe', 'test/other', 'devices/d1/telemetry', 'devices/d1/secrets/key', 'devices/d1/secrets'] as const;
const FILTERS = ['#', '+/+', 'devices/#'] as const;
/** What each filter receives of TOPICS: the topics it matches that the ACL allows, in order. */
const EXPECTED: Record<(typeof FILTERS)[number], string[]> = {
  '#': ['test/other', 'devices/d1/telemetry'],
  '+/+': ['test/other'],
  'devices/#': ['devices/d1/telemetry'],
};
/** The deliveries of TOPICS each filter would get but is refused: the denied topics it matches. */
const DENIED: Record<(typeof FILTERS)[number], number> = { '#': 3, '+/+': 1, 'devices/#': 2 };
/** Published last in a case: every filter matches it and the ACL allows it, so once it is in, everything before it is. */
const MARKER = 'devices/marker';

/** A payload no transport would pass by accident: binary bytes and the topic. */
const payloadOf = (tag: string, topic: string) => Buffer.concat([Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x80]), Buffer.from(`${tag}:${topic}`)]);

interface Received {
  topic: string;
  payload: Buffer;
  retain: boolean;
}

interface Receiver {
  client: mqtt.MqttClient;
  received: Received[];
}

/** A real MQTT client that records every message from the moment it connects (a resumed session's queue comes right after the CONNACK). */
async function receiver(bridge: TestBridge, transport: Transport, options: mqtt.IClientOptions = {}): Promise<Receiver> {
  const received: Received[] = [];
  const client = mqtt.connect(bridge.url(transport), { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000, clientId: uniqueName('rx'), ...options });
  client.on('message', (topic, payload, packet) => received.push({ topic, payload: Buffer.from(payload), retain: packet.retain }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return { client, received };
}

/** The marker, or (from the downlink, whose routing key has two words) a topic under it. */
const isMarker = (topic: string) => topic === MARKER || topic.startsWith(`${MARKER}/`);

/** What arrived before the marker, the marker left out. */
const beforeMarker = (receiver: Receiver) => receiver.received.filter((message) => !isMarker(message.topic));

async function untilMarker(receiver: Receiver, what: string): Promise<void> {
  await waitFor(() => receiver.received.some((message) => isMarker(message.topic)), `the marker at ${what}`);
}

const offlineSessions = (bridge: TestBridge) => bridge.bridge.metrics.value('mqtt_amqp_bridge_mqtt_sessions', { state: 'offline' });

/**
 * Subscribes persistent sessions and leaves them offline, waiting until the bridge has seen each
 * client go: a message for a connected client is left to the check as it is sent.
 */
async function offlineSubscribers(bridge: TestBridge, transport: Transport, sessions: Array<{ filter: string; options: mqtt.IClientOptions }>): Promise<void> {
  const before = await offlineSessions(bridge);
  for (const { filter, options } of sessions) {
    const client = await receiver(bridge, transport, { ...options, clean: false });
    await client.client.subscribeAsync(filter, { qos: 1 });
    await client.client.endAsync();
  }
  await waitFor(async () => (await offlineSessions(bridge)) >= before + sessions.length, `${sessions.length} sessions offline`);
}

const deniedDeliveries = (bridge: TestBridge) => bridge.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'deliver' });

/** Ends a persistent session, so that it queues (and counts) nothing for the cases after it. */
async function endSession(bridge: TestBridge, transport: Transport, clientId: string, options: mqtt.IClientOptions = {}): Promise<void> {
  const client = await connectClient(bridge.url(transport), { ...options, clientId, clean: true });
  await client.endAsync();
}

/** The return codes of one SUBSCRIBE (mqtt.js rejects a SUBACK with 0x80, so raw packets). */
async function subackCodes(bridge: TestBridge, transport: Transport, filters: string[], login: { clientId?: string; username?: string; password?: string } = {}): Promise<number[]> {
  const client = await RawMqttClient.open(transport, bridge.url(transport));
  try {
    client.sendConnect({ clientId: login.clientId ?? uniqueName('raw'), ...login });
    assert.equal(((await client.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: filters.map((topic) => ({ topic, qos: 1 })) });
    return ((await client.next('suback')) as unknown as { granted: number[] }).granted;
  } finally {
    client.destroy();
  }
}

function assertExactly(receiver: Receiver, filter: string, tag: string, expected: readonly string[], copies = 1): void {
  const got = beforeMarker(receiver);
  const want = expected.flatMap((topic) => Array.from({ length: copies }, () => topic));
  assert.deepEqual(got.map((message) => message.topic).sort(), [...want].sort(), `${filter} receives exactly the allowed topics`);
  for (const message of got) assert.ok(message.payload.equals(payloadOf(tag, message.topic)), `${filter}: ${message.topic} arrives byte for byte`);
}

for (const transport of TRANSPORTS) {
  describe(`acl over ${transport}`, () => {
    test(`acl ${transport} - a filter that only overlaps a denied area is granted; one a deny entry covers, or no allow entry covers, gets 0x80`, async () => {
      assert.deepEqual(
        await subackCodes(open, transport, ['#', '+/+', 'devices/#', 'test/+', 'devices/+/+/key', 'test/nosubscribe/#', 'test/nosubscribe', 'devices/d1/secrets/#', 'devices/+/secrets/key', 'devices/d1/secrets', '$SYS/#']),
        [1, 1, 1, 1, 1, 1, 128, 128, 128, 128, 128],
      );
      const alice = { clientId: 'alice-1', username: 'alice', password: PASSWORDS.alice };
      assert.deepEqual(
        await subackCodes(named, transport, ['#', 'users/alice/#', 'clients/alice-1/#', 'users/+/x', 'users/#', 'users/bob/x', 'clients/+/#', 'clients/bob-1/x'], alice),
        [1, 1, 1, 128, 128, 128, 128, 128],
        '"#" is granted, "users/#" is not: the first entry that covers users/# is the deny (users/{username}/# only overlaps it)',
      );
    });

    test(`acl ${transport} - live messages: #, +/+ and devices/# receive the allowed topics byte for byte, never a denied one, and each denied delivery is counted once`, async () => {
      const receivers = await Promise.all(FILTERS.map(() => receiver(open, transport)));
      const publisher = await connectClient(open.url(transport));
      try {
        await Promise.all(FILTERS.map((filter, i) => receivers[i]!.client.subscribeAsync(filter, { qos: 1 })));
        const before = await deniedDeliveries(open);
        for (const qos of [0, 1] as const) {
          for (const topic of TOPICS) await publisher.publishAsync(topic, payloadOf(`live${qos}`, topic), { qos });
        }
        await publisher.publishAsync(MARKER, 'end', { qos: 1 });
        for (const [i, filter] of FILTERS.entries()) await untilMarker(receivers[i]!, filter);
        for (const [i, filter] of FILTERS.entries()) {
          const got = beforeMarker(receivers[i]!);
          assert.deepEqual(got.map((message) => message.topic), [...EXPECTED[filter], ...EXPECTED[filter]], `${filter}, QoS 0 then QoS 1`);
          got.forEach((message, index) => assert.ok(message.payload.equals(payloadOf(index < EXPECTED[filter].length ? 'live0' : 'live1', message.topic)), `${filter}: ${message.topic} byte for byte`));
        }
        const perRound = DENIED['#'] + DENIED['+/+'] + DENIED['devices/#'];
        assert.equal(await deniedDeliveries(open), before + 2 * perRound, 'each denied delivery counted once (QoS 0 and QoS 1)');
      } finally {
        await Promise.all(receivers.map((r) => r.client.endAsync()));
        await publisher.endAsync();
      }
    });

    test(`acl ${transport} - a connected persistent session under "#": a burst of allowed and denied QoS 1 messages, interleaved, leaves it connected with every allowed one`, async () => {
      // aedes queues a persistent session's QoS 1 messages while they are sent, and clears a refused
      // one from that queue by the packet it has, which has no packet id yet: matching on that
      // removed another message still waiting to be sent, and sending that one then closed the connection.
      const clientId = uniqueName('burst');
      const persistent = await receiver(open, transport, { clientId, clean: false });
      const publisher = await connectClient(open.url(transport));
      const ROUNDS = 50;
      try {
        await persistent.client.subscribeAsync('#', { qos: 1 });
        const before = await deniedDeliveries(open);
        const sends: Array<Promise<unknown>> = [];
        for (let i = 0; i < ROUNDS; i++) {
          sends.push(publisher.publishAsync('devices/d1/telemetry', payloadOf(`burst${i}`, 'devices/d1/telemetry'), { qos: 1 }));
          sends.push(publisher.publishAsync('devices/d1/secrets/key', payloadOf(`burst${i}`, 'devices/d1/secrets/key'), { qos: 1 }));
        }
        await Promise.all(sends);
        await publisher.publishAsync(MARKER, 'end', { qos: 1 });
        await untilMarker(persistent, 'the persistent session');
        assert.equal(persistent.client.connected, true);
        const got = beforeMarker(persistent);
        assert.deepEqual(got.map((message) => message.topic), Array.from({ length: ROUNDS }, () => 'devices/d1/telemetry'));
        assert.deepEqual(
          got.map((message) => message.payload.toString('latin1')).sort(),
          Array.from({ length: ROUNDS }, (_, i) => payloadOf(`burst${i}`, 'devices/d1/telemetry').toString('latin1')).sort(),
        );
        assert.equal(await deniedDeliveries(open), before + ROUNDS);
      } finally {
        await persistent.client.endAsync();
        await publisher.endAsync();
        await endSession(open, transport, clientId);
      }
    });

    test(`acl ${transport} - retained messages sent on SUBSCRIBE: only the allowed ones, byte for byte; each refused one counted`, async () => {
      const publisher = await connectClient(open.url(transport));
      try {
        for (const topic of TOPICS) await publisher.publishAsync(topic, payloadOf('retained', topic), { qos: 1, retain: true });
        for (const filter of FILTERS) {
          const subscriber = await receiver(open, transport);
          try {
            const before = await deniedDeliveries(open);
            await subscriber.client.subscribeAsync(filter, { qos: 1 });
            await waitFor(() => subscriber.received.length >= EXPECTED[filter].length, `the retained messages at ${filter}`);
            await waitFor(async () => (await deniedDeliveries(open)) >= before + DENIED[filter], `${DENIED[filter]} refused retained deliveries to ${filter}`);
            await publisher.publishAsync(MARKER, 'end', { qos: 1 });
            await untilMarker(subscriber, filter);
            assertExactly(subscriber, filter, 'retained', EXPECTED[filter]);
            assert.ok(beforeMarker(subscriber).every((message) => message.retain), 'sent as retained messages');
            assert.equal(await deniedDeliveries(open), before + DENIED[filter]);
          } finally {
            await subscriber.client.endAsync();
          }
        }
      } finally {
        for (const topic of TOPICS) await publisher.publishAsync(topic, '', { qos: 1, retain: true }); // clears them for the cases after
        await publisher.endAsync();
      }
    });

    test(`acl ${transport} - an offline persistent session queues only what its client may receive; it gets those byte for byte when it comes back`, async () => {
      const ids = FILTERS.map(() => uniqueName('offline'));
      await offlineSubscribers(open, transport, FILTERS.map((filter, i) => ({ filter, options: { clientId: ids[i]! } })));
      const publisher = await connectClient(open.url(transport));
      const back: Receiver[] = [];
      try {
        const before = await deniedDeliveries(open);
        for (const topic of TOPICS) await publisher.publishAsync(topic, payloadOf('offline', topic), { qos: 1 });
        const refused = DENIED['#'] + DENIED['+/+'] + DENIED['devices/#'];
        // aedes acknowledges a QoS 1 publish before it queues it; a Redis store queues it a round trip later.
        await waitFor(async () => (await deniedDeliveries(open)) >= before + refused, 'the refusals to be counted');
        assert.equal(await deniedDeliveries(open), before + refused, 'counted when they are not queued');
        await publisher.publishAsync(MARKER, 'end', { qos: 1 });
        for (const [i, filter] of FILTERS.entries()) {
          back.push(await receiver(open, transport, { clientId: ids[i]!, clean: false }));
          await untilMarker(back[i]!, `${filter} after it came back`);
          assertExactly(back[i]!, filter, 'offline', EXPECTED[filter]);
        }
        assert.equal(await deniedDeliveries(open), before + refused, 'and not again when the session resumes');
      } finally {
        await Promise.all(back.map((r) => r.client.endAsync()));
        await publisher.endAsync();
        for (const id of ids) await endSession(open, transport, id);
      }
    });

    test(`acl ${transport} - downlink commands: a live and an offline "#" subscriber get the allowed commands only; each refused one counted`, async () => {
      const offlineId = uniqueName('dl-offline');
      await offlineSubscribers(open, transport, [{ filter: '#', options: { clientId: offlineId } }]);
      const live = await receiver(open, transport);
      let back: Receiver | undefined;
      try {
        await live.client.subscribeAsync('#', { qos: 1 });
        const before = await deniedDeliveries(open);
        // routing key d1.secrets.key becomes topic devices/d1/secrets/key, and so on.
        for (const key of ['d1.telemetry', 'd1.secrets.key', 'd1.secrets', 'marker.end']) {
          const topic = `devices/${key.replaceAll('.', '/')}`;
          await publishConfirmed(commands, key, isMarker(topic) ? 'end' : payloadOf('downlink', topic));
        }
        await untilMarker(live, 'the live subscriber');
        assertExactly(live, '#', 'downlink', ['devices/d1/telemetry']);
        back = await receiver(open, transport, { clientId: offlineId, clean: false });
        await untilMarker(back, 'the persistent session after it came back');
        assertExactly(back, '#', 'downlink', ['devices/d1/telemetry']);
        assert.equal(await deniedDeliveries(open), before + 4, 'two refused commands, for each of two subscribers');
      } finally {
        await live.client.endAsync();
        await back?.client.endAsync();
        await endSession(open, transport, offlineId);
      }
    });

    test(`acl ${transport} - wills: a live and an offline "#" subscriber get the will on an allowed topic only; the refused one counted`, async () => {
      const offlineId = uniqueName('will-offline');
      await offlineSubscribers(open, transport, [{ filter: '#', options: { clientId: offlineId } }]);
      const live = await receiver(open, transport);
      let back: Receiver | undefined;
      const dying: RawMqttClient[] = [];
      try {
        await live.client.subscribeAsync('#', { qos: 1 });
        const before = await deniedDeliveries(open);
        // The ACL lets these clients publish on both topics (the deny is for subscribe): the wills are accepted at CONNECT.
        for (const topic of ['devices/d1/secrets/key', 'devices/d1/telemetry']) {
          const client = await RawMqttClient.open(transport, open.url(transport));
          dying.push(client);
          client.sendConnect({ clientId: uniqueName('dying'), will: { topic, payload: payloadOf('will', topic), qos: 1 } });
          assert.equal(((await client.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
          client.destroy(); // no DISCONNECT: the will is published [MQTT-3.1.2-8]
        }
        await waitFor(() => live.received.length >= 1, 'the allowed will at the live subscriber');
        await waitFor(async () => (await deniedDeliveries(open)) >= before + 2, 'the refused will counted for both subscribers');
        const publisher = await connectClient(open.url(transport));
        await publisher.publishAsync(MARKER, 'end', { qos: 1 });
        await publisher.endAsync();
        await untilMarker(live, 'the live subscriber');
        assertExactly(live, '#', 'will', ['devices/d1/telemetry']);
        back = await receiver(open, transport, { clientId: offlineId, clean: false });
        await untilMarker(back, 'the persistent session after it came back');
        assertExactly(back, '#', 'will', ['devices/d1/telemetry']);
        assert.equal(await deniedDeliveries(open), before + 2);
      } finally {
        for (const client of dying) client.destroy();
        await live.client.endAsync();
        await back?.client.endAsync();
        await endSession(open, transport, offlineId);
      }
    });

    test(`acl ${transport} - {username} and {clientId} entries: "#" is granted, and each user receives its own users/ and clients/ topics, live and queued, not another's`, async () => {
      const alice = { username: 'alice', password: PASSWORDS.alice };
      const topics = ['users/alice/x', 'users/bob/x', 'clients/alice-1/x', 'clients/bob-1/x', 'other/x'];
      const mine = ['users/alice/x', 'clients/alice-1/x', 'other/x'];
      // auth.clientIds ties client ids to their user: bob cannot claim alice's and pass her {clientId} entries.
      const impostor = await RawMqttClient.open(transport, named.url(transport));
      impostor.sendConnect({ clientId: 'alice-1', username: 'bob', password: PASSWORDS.bob });
      assert.equal(((await impostor.next('connack')) as unknown as { returnCode: number }).returnCode, 2);
      impostor.destroy();

      await offlineSubscribers(named, transport, [{ filter: '#', options: { ...alice, clientId: 'alice-2' } }]);
      const live = await receiver(named, transport, { ...alice, clientId: 'alice-1' });
      const bob = await connectClient(named.url(transport), { username: 'bob', password: PASSWORDS.bob, clientId: uniqueName('bob') });
      let back: Receiver | undefined;
      try {
        await live.client.subscribeAsync('#', { qos: 1 });
        const before = await deniedDeliveries(named);
        for (const topic of topics) await bob.publishAsync(topic, payloadOf('named', topic), { qos: 1 });
        await bob.publishAsync(MARKER, 'end', { qos: 1 });
        await untilMarker(live, 'alice-1');
        assertExactly(live, '#', 'named', mine);
        // The queued session is alice-2's: clients/alice-1/x is not its own, and its identity comes from the session's owner.
        back = await receiver(named, transport, { ...alice, clientId: 'alice-2', clean: false });
        await untilMarker(back, 'alice-2 after it came back');
        assertExactly(back, '#', 'named', ['users/alice/x', 'other/x']);
        assert.equal(await deniedDeliveries(named), before + 2 + 3);
      } finally {
        await live.client.endAsync();
        await back?.client.endAsync();
        await bob.endAsync();
        await endSession(named, transport, 'alice-2', alice);
      }
    });
  });
}

test('acl - refused deliveries are logged with the client id and the topic, rate-limited; no allowed delivery is logged', async () => {
  const lines = logs.lines.filter((line) => line.msg === 'denied by the ACL' && line.action === 'deliver');
  assert.ok(lines.length > 0, 'some are logged');
  for (const line of lines) {
    assert.ok(['test/nosubscribe', 'devices/d1/secrets/key', 'devices/d1/secrets'].includes(line.topic as string), `only denied topics: ${String(line.topic)}`);
    assert.equal(typeof line.clientId, 'string');
  }
  const counted = await deniedDeliveries(open);
  assert.ok(lines.length < counted, `rate-limited: ${lines.length} lines for ${counted} refusals`);
});
