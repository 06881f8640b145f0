import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { delay, publishConfirmed, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, type TestBridge, transientExchange, type Transport, TRANSPORTS } from '../helpers/bridge.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

const prefix = uniqueName('dl');
const commands = uniqueName('dl-commands');
const uplinkExchange = uniqueName('dl-up');
const deadLetters = uniqueName('dl-dead');
const queues = ['commands', 'q0', 'q1', 'q2', 'config', 'notify', 'by-header'].map((name) => [name, uniqueName(`dl-${name}`)] as const);
const queueOf = Object.fromEntries(queues) as Record<string, string>;
const MAX_OFFLINE = 100;

let bridge: TestBridge;
let deadLettered: TestConsumer;
let uplinked: TestConsumer;

before(async () => {
  bridge = await startTestBridge({
    mqtt: {
      maxOfflineMessages: MAX_OFFLINE,
    },
    amqp: {
      exchanges: [
        transientExchange(commands),
        transientExchange(uplinkExchange),
        { name: deadLetters, type: 'fanout', durable: false, autoDelete: false },
      ],
    },
    uplink: [{ name: 'all', topic: `${prefix}/#`, exchange: uplinkExchange, routingKey: '{#}' }],
    downlink: [
      { name: 'commands', exchange: commands, routingKey: 'cmd.{deviceId}.#', topic: `${prefix}/devices/{deviceId}/commands/{#}`, qos: 1, queueName: queueOf.commands },
      { name: 'q0', exchange: commands, routingKey: 'q0.{device}', topic: `${prefix}/q0/{device}`, qos: 0, queueName: queueOf.q0 },
      { name: 'q1', exchange: commands, routingKey: 'q1.{device}', topic: `${prefix}/q1/{device}`, qos: 1, queueName: queueOf.q1 },
      { name: 'q2', exchange: commands, routingKey: 'q2.{device}', topic: `${prefix}/q2/{device}`, qos: 2, queueName: queueOf.q2 },
      { name: 'config', exchange: commands, routingKey: 'config.{device}', topic: `${prefix}/config/{device}`, qos: 1, retain: true, queueName: queueOf.config },
      { name: 'notify', exchange: commands, routingKey: 'notify.{device}', topic: `${prefix}/notify/{device}`, qos: 1, queueName: queueOf.notify },
      {
        name: 'by-header',
        exchange: commands,
        routingKey: 'hdr.*',
        topic: `${prefix}/by-header/{headers.x-target}`,
        qos: 1,
        queueName: queueOf['by-header'],
        deadLetterExchange: deadLetters,
      },
    ],
  });
  deadLettered = await TestConsumer.create([{ exchange: deadLetters, key: '' }]);
  uplinked = await TestConsumer.create([{ exchange: uplinkExchange, key: '#' }]);
});

after(async () => {
  await deadLettered?.close();
  await uplinked?.close();
  await bridge?.stop();
  await withChannel(async (channel) => {
    for (const [, queue] of queues) await channel.deleteQueue(queue);
    for (const exchange of [commands, uplinkExchange, deadLetters]) await channel.deleteExchange(exchange);
  }).catch(() => {});
});

/** Publishes on AMQP as an enterprise system would, waiting for RabbitMQ's confirm. */
const command = (routingKey: string, payload: Buffer | string, headers?: Record<string, unknown>) => publishConfirmed(commands, routingKey, payload, { headers, persistent: true });

const delivered = (rule: string) => bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_messages_total', { rule });

/** Waits until the bridge has published `count` more deliveries of this rule to MQTT (online or into offline sessions). */
async function waitForDelivered(rule: string, before: number, count: number): Promise<void> {
  await waitFor(async () => (await delivered(rule)) >= before + count, `the bridge to publish ${count} ${rule} deliveries to MQTT`);
}

interface Received {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
}

/** A device: an mqtt client that records what it receives. */
async function device(transport: Transport, options: { clientId?: string; clean?: boolean } = {}) {
  const received: Received[] = [];
  // Listening before the CONNACK: a resumed session's queued messages may come in the same read.
  const client = mqtt.connect(bridge.url(transport), { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000, clientId: options.clientId ?? uniqueName('dev'), clean: options.clean ?? true });
  client.on('message', (topic, payload, packet) => received.push({ topic, payload, qos: packet.qos, retain: packet.retain }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return { client, received };
}

for (const transport of TRANSPORTS) {
  describe(`downlink over ${transport}`, () => {
    test(`downlink ${transport} - a command reaches exactly the subscribed device, on the rendered topic, byte for byte`, async () => {
      const one = await device(transport);
      const two = await device(transport);
      try {
        await one.client.subscribeAsync(`${prefix}/devices/d1-${transport}/commands/#`, { qos: 1 });
        await two.client.subscribeAsync(`${prefix}/devices/d2-${transport}/commands/#`, { qos: 1 });
        const payload = randomBytes(512);
        await command(`cmd.d1-${transport}.set.room/1`, payload);
        await waitFor(() => one.received.length === 1, 'the command at device 1');
        assert.equal(one.received[0]!.topic, `${prefix}/devices/d1-${transport}/commands/set/room.1`);
        assert.ok(one.received[0]!.payload.equals(payload));
        assert.equal(one.received[0]!.qos, 1);
        await delay(300);
        assert.equal(two.received.length, 0, 'the other device gets nothing');
        assert.equal(one.received.length, 1, 'exactly once');
      } finally {
        await one.client.endAsync();
        await two.client.endAsync();
      }
    });

    test(`downlink ${transport} - QoS is min(rule QoS, subscription QoS)`, async () => {
      const subscribers = await Promise.all([0, 1, 2].map(() => device(transport)));
      try {
        for (const [qos, subscriber] of subscribers.entries()) {
          await subscriber.client.subscribeAsync(`${prefix}/+/s${qos}-${transport}`, { qos: qos as 0 | 1 | 2 });
        }
        for (const ruleQos of [0, 1, 2]) for (const subQos of [0, 1, 2]) await command(`q${ruleQos}.s${subQos}-${transport}`, `${ruleQos}/${subQos}`);
        await waitFor(() => subscribers.every((s) => s.received.length === 3), 'three messages at each subscriber');
        for (const [subQos, subscriber] of subscribers.entries()) {
          const byRule = Object.fromEntries(subscriber.received.map((m): [string, number] => [m.topic.split('/').at(-2) ?? '', m.qos]));
          assert.deepEqual(byRule, { q0: 0, q1: Math.min(1, subQos), q2: Math.min(2, subQos) }, `subscription QoS ${subQos}`);
        }
      } finally {
        await Promise.all(subscribers.map((s) => s.client.endAsync()));
      }
    });

    test(`downlink ${transport} - a persistent session gets the 100 commands sent while offline, in order, once each`, async () => {
      const clientId = uniqueName(`offline-${transport}`);
      const deviceId = `off-${transport}`;
      const first = await device(transport, { clientId, clean: false });
      await first.client.subscribeAsync(`${prefix}/devices/${deviceId}/commands/#`, { qos: 1 });
      await first.client.endAsync();
      const deliveredBefore = await delivered('commands');
      for (let i = 0; i < 100; i++) await command(`cmd.${deviceId}.n`, String(i));
      await waitForDelivered('commands', deliveredBefore, 100);
      const back = await device(transport, { clientId, clean: false });
      try {
        await waitFor(() => back.received.length >= 100, '100 queued commands');
        await delay(300);
        assert.deepEqual(
          back.received.map((m) => m.payload.toString()),
          Array.from({ length: 100 }, (_, i) => String(i)),
        );
      } finally {
        await back.client.endAsync();
      }
    });

    test(`downlink ${transport} - a clean session starts empty and does not get what an earlier session missed`, async () => {
      const clientId = uniqueName(`clean-${transport}`);
      const deviceId = `clean-${transport}`;
      const first = await device(transport, { clientId, clean: false });
      await first.client.subscribeAsync(`${prefix}/devices/${deviceId}/commands/#`, { qos: 1 });
      await first.client.endAsync();
      const deliveredBefore = await delivered('commands');
      for (let i = 0; i < 5; i++) await command(`cmd.${deviceId}.n`, String(i));
      await waitForDelivered('commands', deliveredBefore, 5);
      const fresh = await RawMqttClient.open(transport, bridge.url(transport));
      try {
        const connack = await fresh.connect(clientId, true);
        assert.equal(connack.returnCode, 0);
        assert.equal(connack.sessionPresent, false, 'the old session is gone [MQTT-3.2.2-1]');
        await delay(500);
        assert.equal(fresh.count('publish'), 0, 'nothing delivered to the clean session');
      } finally {
        fresh.destroy();
      }
    });

    test(`downlink ${transport} - retained commands reach later wildcard subscriptions; an empty payload clears them`, async () => {
      const configBefore = await delivered('config');
      const notifyBefore = await delivered('notify');
      await command(`config.r1-${transport}`, 'v1');
      await command(`notify.r2-${transport}`, 'via-header', { 'x-mqtt-retain': true });
      await waitForDelivered('config', configBefore, 1);
      await waitForDelivered('notify', notifyBefore, 1);
      const late = await device(transport);
      try {
        await late.client.subscribeAsync(`${prefix}/+/+`, { qos: 1 });
        await waitFor(() => late.received.filter((m) => m.topic.endsWith(`-${transport}`)).length === 2, 'two retained messages');
        const mine = late.received.filter((m) => m.topic.endsWith(`-${transport}`)).sort((a, b) => a.topic.localeCompare(b.topic));
        assert.deepEqual(
          mine.map((m) => [m.topic, m.payload.toString(), m.retain]),
          [
            [`${prefix}/config/r1-${transport}`, 'v1', true],
            [`${prefix}/notify/r2-${transport}`, 'via-header', true],
          ],
        );
      } finally {
        await late.client.endAsync();
      }
      const clearedBefore = await delivered('config');
      await command(`config.r1-${transport}`, Buffer.alloc(0));
      await waitForDelivered('config', clearedBefore, 1);
      const later = await device(transport);
      try {
        await later.client.subscribeAsync(`${prefix}/config/+`, { qos: 1 });
        await delay(500);
        assert.deepEqual(later.received.filter((m) => m.topic.endsWith(`r1-${transport}`)), [], 'cleared');
      } finally {
        await later.client.endAsync();
      }
    });

    test(`downlink ${transport} - a device publish reaches other MQTT subscribers (a dashboard) and AMQP`, async () => {
      const dashboard = await device('ws');
      const sensor = await device(transport);
      try {
        await dashboard.client.subscribeAsync(`${prefix}/telemetry/#`, { qos: 1 });
        const before = uplinked.messages.length;
        await sensor.client.publishAsync(`${prefix}/telemetry/${transport}`, '21.5', { qos: 1 });
        await waitFor(() => dashboard.received.length === 1, 'the dashboard to see the telemetry');
        assert.equal(dashboard.received[0]!.payload.toString(), '21.5');
        const arrived = await uplinked.waitForCount(before + 1);
        assert.equal(arrived[before]!.fields.routingKey, `telemetry.${transport}`);
      } finally {
        await dashboard.client.endAsync();
        await sensor.client.endAsync();
      }
    });

    test(`downlink ${transport} - a retained device publish is kept for later subscribers`, async () => {
      const sensor = await device(transport);
      await sensor.client.publishAsync(`${prefix}/state/${transport}`, 'on', { qos: 1, retain: true });
      await sensor.client.endAsync();
      const late = await device(transport);
      try {
        await late.client.subscribeAsync(`${prefix}/state/#`, { qos: 1 });
        await waitFor(() => late.received.some((m) => m.topic === `${prefix}/state/${transport}`), 'the retained state');
        const state = late.received.find((m) => m.topic === `${prefix}/state/${transport}`)!;
        assert.deepEqual([state.payload.toString(), state.retain], ['on', true]);
      } finally {
        await late.client.endAsync();
      }
    });

    test(`downlink ${transport} - the last will goes to AMQP and MQTT on an abnormal disconnect, not on a clean one`, async () => {
      const watcher = await device(transport);
      await watcher.client.subscribeAsync(`${prefix}/will/#`, { qos: 1 });
      const deadId = uniqueName(`will-${transport}`);
      const before = uplinked.messages.length;
      try {
        const dying = await connectClient(bridge.url(transport), {
          clientId: deadId,
          will: { topic: `${prefix}/will/${deadId}`, payload: Buffer.from('gone'), qos: 1, retain: false },
        });
        dying.stream.destroy(); // the socket dies without DISCONNECT
        await waitFor(() => watcher.received.length === 1, 'the will at the MQTT watcher');
        assert.deepEqual([watcher.received[0]!.topic, watcher.received[0]!.payload.toString()], [`${prefix}/will/${deadId}`, 'gone']);
        const messages = await uplinked.waitForCount(before + 1);
        const will = messages[before]!;
        assert.equal(will.fields.routingKey, `will.${deadId}`);
        assert.equal(will.content.toString(), 'gone');
        assert.deepEqual(will.properties.headers, { 'x-mqtt-topic': `${prefix}/will/${deadId}`, 'x-mqtt-qos': 1, 'x-mqtt-client-id': deadId });

        const polite = await connectClient(bridge.url(transport), {
          clientId: uniqueName(`nowill-${transport}`),
          will: { topic: `${prefix}/will/polite`, payload: Buffer.from('should not'), qos: 1, retain: false },
        });
        await polite.endAsync(); // a clean DISCONNECT
        await delay(500);
        assert.equal(watcher.received.length, 1, 'no will after a clean DISCONNECT');
        assert.equal(uplinked.messages.length, before + 1);
      } finally {
        await watcher.client.endAsync();
      }
    });

    test(`downlink ${transport} - a second connection with the same client id takes over and closes the first`, async () => {
      const clientId = uniqueName(`takeover-${transport}`);
      const first = await connectClient(bridge.url(transport), { clientId });
      let firstClosed = false;
      first.on('close', () => {
        firstClosed = true;
      });
      const second = await connectClient(bridge.url(transport), { clientId });
      try {
        await waitFor(() => firstClosed, 'the first connection to be closed [MQTT-3.1.4-2]');
        assert.equal(second.connected, true);
      } finally {
        first.end(true);
        await second.endAsync();
      }
    });
  });
}

test('downlink - a message queued for an offline session is delivered with the QoS the wildcard subscription was granted', async () => {
  const clientId = uniqueName('offline-qos');
  const first = await device('tcp', { clientId, clean: false });
  await first.client.subscribeAsync(`${prefix}/q2/+`, { qos: 1 });
  await first.client.endAsync();
  const deliveredBefore = await delivered('q2');
  await command('q2.queued-qos', 'two');
  await waitForDelivered('q2', deliveredBefore, 1);
  const back = await device('tcp', { clientId, clean: false });
  try {
    await waitFor(() => back.received.length === 1, 'the queued message');
    assert.deepEqual([back.received[0]!.topic, back.received[0]!.qos], [`${prefix}/q2/queued-qos`, 1]);
  } finally {
    await back.client.endAsync();
  }
});

test('downlink - the oldest messages of a full offline queue are dropped and counted', async () => {
  const clientId = uniqueName('overflow');
  const first = await device('tcp', { clientId, clean: false });
  await first.client.subscribeAsync(`${prefix}/devices/overflow/commands/#`, { qos: 1 });
  await first.client.endAsync();
  const droppedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_offline_messages_dropped_total');
  for (let i = 0; i < MAX_OFFLINE + 5; i++) await command('cmd.overflow.n', String(i));
  await waitFor(
    async () => (await bridge.bridge.metrics.value('mqtt_amqp_bridge_offline_messages_dropped_total')) === droppedBefore + 5,
    'the 5 oldest offline messages to be dropped',
  );
  const back = await device('tcp', { clientId, clean: false });
  try {
    await waitFor(() => back.received.length >= MAX_OFFLINE, `${MAX_OFFLINE} queued commands`);
    await delay(300);
    assert.deepEqual(
      back.received.map((m) => Number(m.payload.toString())),
      Array.from({ length: MAX_OFFLINE }, (_, i) => i + 5),
    );
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_offline_messages_dropped_total'), droppedBefore + 5);
  } finally {
    await back.client.endAsync();
  }
});

test('downlink - a delivery whose topic cannot be rendered is dead-lettered, and the next one still flows', async () => {
  const watcher = await device('tcp');
  try {
    await watcher.client.subscribeAsync(`${prefix}/by-header/#`, { qos: 1 });
    const rejectedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'by-header', reason: 'render_failed' });
    await command('hdr.a', 'no target header');
    await command('hdr.b', 'has target', { 'x-target': 'lamp-7' });
    await waitFor(() => watcher.received.length === 1, 'the good message');
    assert.deepEqual([watcher.received[0]!.topic, watcher.received[0]!.payload.toString()], [`${prefix}/by-header/lamp-7`, 'has target']);
    const [dead] = await deadLettered.waitForCount(1);
    assert.equal(dead!.content.toString(), 'no target header');
    assert.equal(dead!.fields.routingKey, 'hdr.a');
    assert.equal((dead!.properties.headers?.['x-death'] as Array<{ reason: string }>)[0]!.reason, 'rejected');
    assert.equal(
      await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'by-header', reason: 'render_failed' }),
      rejectedBefore + 1,
    );
  } finally {
    await watcher.client.endAsync();
  }
});

test('downlink - deliveries are counted per rule', async () => {
  // Three per transport in the QoS table test, and one for the offline-session QoS test.
  assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_messages_total', { rule: 'q2' }), 3 * TRANSPORTS.length + 1);
});

