import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { hashPassword } from '../../src/auth/passwords.js';
import type { BridgeConfig } from '../../src/config/schema.js';
import { publishConfirmed, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { startTestBridge, transientExchange, type TestBridge, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import { captureLogs } from '../helpers/log-capture.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

/**
 * A client id belongs to whoever created its session: the attacks of an outside probe with two
 * users, alice and bob, who may each publish under devices/{username}/ and subscribe to
 * devices/{username}/commands/, while a downlink rule sends commands from AMQP.
 */
const PASSWORDS = { alice: 'alice-secret-1', bob: 'bob-secret-2' } as const;
type User = keyof typeof PASSWORDS;
const commands = uniqueName('sessions-commands');
const queues = [uniqueName('sessions-queue'), uniqueName('sessions-queue-short')];
const logs = captureLogs('info');

const ACL = [
  { allow: 'publish', topic: 'devices/{username}/#' },
  { allow: 'subscribe', topic: 'devices/{username}/commands/#' },
  { allow: 'subscribe', topic: 'clients/{clientId}/#' },
] as const;

async function settings(queue: string) {
  const users = await Promise.all(Object.entries(PASSWORDS).map(async ([username, password]) => ({ username, password: await hashPassword(password) })));
  return {
    auth: { users, anonymous: true, clientIds: ['{username}', '{username}-*', 'shared-*'] },
    acl: [...ACL],
    amqp: { exchanges: [transientExchange(commands)] },
    downlink: [{ name: 'commands', exchange: commands, routingKey: '{deviceId}.#', topic: 'devices/{deviceId}/commands/{#}', qos: 1 as const, queueName: queue }],
  };
}

let bridge: TestBridge;

before(async () => {
  bridge = await startTestBridge(await settings(queues[0]!), { logger: logs.logger });
});

after(async () => {
  await bridge?.stop();
  await withChannel(async (channel) => {
    for (const queue of queues) await channel.deleteQueue(queue);
    await channel.deleteExchange(commands);
  }).catch(() => {});
});

/** Publishes a command on the downlink exchange and waits until the bridge has taken it. */
async function sendCommand(on: TestBridge, routingKey: string, payload: string): Promise<void> {
  const before = await delivered(on);
  await publishConfirmed(commands, routingKey, payload);
  await waitFor(async () => (await delivered(on)) > before, `the bridge to take command ${routingKey}`);
}

const delivered = (on: TestBridge) => on.bridge.metrics.value('mqtt_amqp_bridge_downlink_messages_total');
const refusals = (on: TestBridge, reason: string) => on.bridge.metrics.value('mqtt_amqp_bridge_mqtt_sessions_refused_total', { reason });

/** A device: connects (mqtt.js, no reconnects), keeps every message and the CONNACK's session present flag. */
async function device(
  on: TestBridge,
  transport: Transport,
  user: User,
  clientId: string,
  options: IClientOptions = {},
): Promise<{ client: MqttClient; sessionPresent: boolean; messages: Array<[string, string]> }> {
  const messages: Array<[string, string]> = [];
  const client = mqtt.connect(on.url(transport), { protocolVersion: 4, reconnectPeriod: 0, clientId, username: user, password: PASSWORDS[user], clean: false, ...options });
  client.on('message', (topic, payload) => messages.push([topic, payload.toString()]));
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  return { client, sessionPresent, messages };
}

/** The CONNACK return code a raw CONNECT gets, and whether the bridge then closed the connection. */
async function connack(on: TestBridge, transport: Transport, clientId: string, user: User | null, clean: boolean): Promise<{ returnCode: number; closed: boolean }> {
  const client = await RawMqttClient.open(transport, on.url(transport));
  try {
    client.sendConnect({ clientId, clean, ...(user ? { username: user, password: PASSWORDS[user] } : {}) });
    const { returnCode } = (await client.next('connack')) as unknown as { returnCode: number };
    if (returnCode !== 0) await waitFor(() => client.closed, 'the refused connection to be closed');
    return { returnCode, closed: client.closed };
  } finally {
    client.destroy();
  }
}

for (const transport of TRANSPORTS) {
  describe(`client ids over ${transport}`, () => {
    test(`sessions ${transport} - another user cannot resume, wipe or take over bob's offline session: CONNACK 5, and bob gets his command`, async () => {
      const clientId = uniqueName('shared-bob');
      const word = uniqueName('unlock');
      const bob = await device(bridge, transport, 'bob', clientId);
      await bob.client.subscribeAsync('devices/bob/commands/#', { qos: 1 });
      await bob.client.endAsync();
      await sendCommand(bridge, `bob.${word}`, 'open');
      const refusedBefore = await refusals(bridge, 'owned_by_another');

      assert.deepEqual(await connack(bridge, transport, clientId, 'alice', false), { returnCode: 5, closed: true }, 'alice resuming it');
      assert.deepEqual(await connack(bridge, transport, clientId, 'alice', true), { returnCode: 5, closed: true }, 'alice wiping it with a clean session');
      assert.deepEqual(await connack(bridge, transport, clientId, null, false), { returnCode: 5, closed: true }, 'an anonymous client resuming it');
      assert.equal(await refusals(bridge, 'owned_by_another'), refusedBefore + 3);
      assert.ok(logs.lines.some((line) => line.reason === 'owned_by_another' && line.clientId === clientId && line.username === 'alice'), 'the refusal is logged with who tried');

      await sendCommand(bridge, `bob.${word}.again`, 'still mine');
      const back = await device(bridge, transport, 'bob', clientId);
      try {
        assert.equal(back.sessionPresent, true, 'the session is still there');
        await waitFor(() => back.messages.length >= 2, 'bob to get both commands');
        assert.deepEqual(back.messages, [
          [`devices/bob/commands/${word}`, 'open'],
          [`devices/bob/commands/${word}/again`, 'still mine'],
        ]);
      } finally {
        await back.client.endAsync();
      }
    });

    test(`sessions ${transport} - another user connecting with a connected client id is refused and bob's connection stays`, async () => {
      const clientId = uniqueName('shared-live');
      const word = uniqueName('live');
      const bob = await device(bridge, transport, 'bob', clientId, { clean: true });
      try {
        await bob.client.subscribeAsync('devices/bob/commands/#', { qos: 1 });
        assert.equal((await connack(bridge, transport, clientId, 'alice', true)).returnCode, 5);
        await sendCommand(bridge, `bob.${word}`, 'for bob');
        await waitFor(() => bob.messages.length === 1, 'bob to get the command on the same connection');
        assert.deepEqual(bob.messages, [[`devices/bob/commands/${word}`, 'for bob']]);
        assert.equal(bob.client.connected, true);
      } finally {
        await bob.client.endAsync();
      }
    });

    test(`sessions ${transport} - auth.clientIds: alice cannot claim the client id "bob" (CONNACK 2), so {clientId} entries give her only her own`, async () => {
      assert.deepEqual(await connack(bridge, transport, 'bob', 'alice', true), { returnCode: 2, closed: true });
      assert.deepEqual(await connack(bridge, transport, 'bob-laptop', 'alice', true), { returnCode: 2, closed: true });
      assert.equal((await connack(bridge, transport, 'nobody-said-so', null, true)).returnCode, 2, 'anonymous clients get the patterns without {username}');
      const ownId = uniqueName('alice');
      const alice = await RawMqttClient.open(transport, bridge.url(transport));
      try {
        alice.sendConnect({ clientId: ownId, username: 'alice', password: PASSWORDS.alice });
        assert.equal(((await alice.next('connack')) as unknown as { returnCode: number }).returnCode, 0);
        alice.send({ cmd: 'subscribe', messageId: 1, subscriptions: [`clients/${ownId}/#`, 'clients/bob/#'].map((topic) => ({ topic, qos: 1 })) });
        assert.deepEqual(((await alice.next('suback')) as unknown as { granted: number[] }).granted, [1, 128]);
      } finally {
        alice.destroy();
      }
    });

    test(`sessions ${transport} - messages queued for a session are checked against the client's ACL when delivered`, async () => {
      const clientId = uniqueName('shared-acl');
      const word = uniqueName('q');
      const running = bridge.config;
      const bob = await device(bridge, transport, 'bob', clientId);
      await bob.client.subscribeAsync('devices/bob/commands/#', { qos: 1 });
      await bob.client.endAsync();
      await sendCommand(bridge, `bob.secret.${word}`, 'hidden');
      await sendCommand(bridge, `bob.open.${word}`, 'visible');
      // The ACL changes while the messages wait: bob may no longer receive devices/bob/commands/secret/#.
      const stricter: BridgeConfig = { ...running, acl: { ...running.acl!, rules: [{ deny: 'subscribe', topic: 'devices/+/commands/secret/#' }, ...running.acl!.rules] } };
      const deniedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'deliver' });
      await bridge.bridge.reload(stricter);
      try {
        const back = await device(bridge, transport, 'bob', clientId);
        try {
          assert.equal(back.sessionPresent, true);
          await waitFor(async () => (await bridge.bridge.metrics.value('mqtt_amqp_bridge_acl_denied_total', { action: 'deliver' })) === deniedBefore + 1, 'the denied delivery to be counted');
          await waitFor(() => back.messages.length >= 1, 'the allowed message');
          assert.deepEqual(back.messages, [[`devices/bob/commands/open/${word}`, 'visible']]);
        } finally {
          await back.client.endAsync();
        }
      } finally {
        await bridge.bridge.reload(running);
      }
    });
  });
}

describe('session expiry and the per-user cap', () => {
  let short: TestBridge;

  before(async () => {
    short = await startTestBridge({ ...(await settings(queues[1]!)), mqtt: { sessionExpirySeconds: 1, maxSessionsPerUser: 2 } });
  });

  after(async () => {
    await short?.stop();
  });

  for (const transport of TRANSPORTS) {
    test(`sessions ${transport} - an offline session is removed after mqtt.sessionExpirySeconds with its queued messages, and counted`, async () => {
      const clientId = uniqueName('shared-expiring');
      const word = uniqueName('expired');
      const expiredBefore = await short.bridge.metrics.value('mqtt_amqp_bridge_mqtt_sessions_expired_total');
      const bob = await device(short, transport, 'bob', clientId);
      await bob.client.subscribeAsync('devices/bob/commands/#', { qos: 1 });
      await bob.client.endAsync();
      await sendCommand(short, `bob.${word}`, 'too late');
      await waitFor(async () => (await short.bridge.metrics.value('mqtt_amqp_bridge_mqtt_sessions_expired_total')) >= expiredBefore + 1, 'the session to expire', 5_000);

      const back = await device(short, transport, 'bob', clientId);
      try {
        assert.equal(back.sessionPresent, false);
        await back.client.subscribeAsync('devices/bob/commands/#', { qos: 1 });
        await sendCommand(short, `bob.${word}.fresh`, 'fresh');
        await waitFor(() => back.messages.length >= 1, 'the command sent after the expiry');
        assert.deepEqual(back.messages, [[`devices/bob/commands/${word}/fresh`, 'fresh']], 'nothing queued before the expiry is delivered');
      } finally {
        await back.client.endAsync();
      }
      // Ended with a clean session, so that it does not count against bob's cap in the next test.
      await (await device(short, transport, 'bob', clientId, { clean: true })).client.endAsync();
    });

    test(`sessions ${transport} - a user holds at most mqtt.maxSessionsPerUser persistent sessions; past it CONNACK 5, counted`, async () => {
      const ids = [uniqueName('shared-cap'), uniqueName('shared-cap'), uniqueName('shared-cap')];
      const refusedBefore = await refusals(short, 'sessions_per_user');
      for (const id of ids.slice(0, 2)) await (await device(short, transport, 'alice', id)).client.endAsync();
      assert.deepEqual(await connack(short, transport, ids[2]!, 'alice', false), { returnCode: 5, closed: true });
      assert.equal(await refusals(short, 'sessions_per_user'), refusedBefore + 1);
      assert.equal((await connack(short, transport, ids[2]!, 'alice', true)).returnCode, 0, 'a clean session is no persistent one');
      assert.equal((await connack(short, transport, ids[2]!, 'bob', false)).returnCode, 0, 'the cap is per user');
      await (await device(short, transport, 'bob', ids[2]!, { clean: true })).client.endAsync();
      // A clean CONNECT ends one of alice's sessions, which frees a place.
      await (await device(short, transport, 'alice', ids[0]!, { clean: true })).client.endAsync();
      assert.equal((await connack(short, transport, ids[2]!, 'alice', false)).returnCode, 0);
      for (const id of ids) await (await device(short, transport, 'alice', id, { clean: true })).client.endAsync();
    });
  }
});
