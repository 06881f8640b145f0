import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import amqplib from 'amqplib';
import type { MqttClient } from 'mqtt';
import { hashPassword } from '../../src/auth/passwords.js';
import { configSchema, type BridgeConfig, type BridgeConfigInput } from '../../src/config/schema.js';
import { AMQP_URL, delay, deleteExchanges, publishConfirmed, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, startTestBridge, transientExchange } from '../helpers/bridge.js';
import { runBridgeProcess, waitForAmqp } from '../helpers/bridge-process.js';
import { captureLogs } from '../helpers/log-capture.js';
import { closeConnectionsNamed, connectionPids } from '../helpers/rabbitmqctl.js';

const exchange = uniqueName('reload');
let consumer: TestConsumer;

before(async () => {
  await withChannel((channel) => channel.assertExchange(exchange, 'topic', { durable: false, autoDelete: false }));
  consumer = await TestConsumer.create([{ exchange, key: '#' }]);
});

after(async () => {
  await consumer?.close();
  await deleteExchanges(exchange);
});

/** A configuration as the test bridge runs it, with changes. */
function configWith(base: BridgeConfig, changes: Partial<BridgeConfigInput>): BridgeConfig {
  return configSchema.parse({ ...base, ...changes });
}

test('reload - 10 clients streaming QoS 1: every message arrives once, with the old routing key before the reload and the new one after', async () => {
  const bridge = await startTestBridge({ uplink: [{ name: 'stream', topic: 'r/{c}', exchange, routingKey: 'old.{c}' }] });
  const clients: MqttClient[] = await Promise.all(Array.from({ length: 10 }, () => connectClient(bridge.url('tcp'))));
  const disconnects: number[] = [];
  clients.forEach((client, c) => client.on('close', () => disconnects.push(c)));
  const PER_CLIENT = 300;
  let sent = 0;
  try {
    const streams = clients.map(async (client, c) => {
      for (let i = 0; i < PER_CLIENT; i++) {
        await client.publishAsync(`r/${c}`, `${c}:${i}`, { qos: 1 });
        sent++;
        if (i % 10 === 0) await delay(2);
      }
    });
    await waitFor(() => sent >= 1_000, 'a third of the stream');
    const result = await bridge.bridge.reload(configWith(bridge.config, { uplink: [{ name: 'stream', topic: 'r/{c}', exchange, routingKey: 'new.{c}' }] }));
    assert.deepEqual(result, { applied: ['uplink'], restartRequired: [] });
    await Promise.all(streams);
    const mine = () => consumer.messages.filter((message) => /^(old|new)\.\d$/.test(message.fields.routingKey));
    await waitFor(() => mine().length >= 10 * PER_CLIENT, 'every message on AMQP');
    await delay(300);
    const messages = mine();
    assert.equal(messages.length, 10 * PER_CLIENT, 'none twice');
    assert.equal(new Set(messages.map((message) => message.content.toString())).size, 10 * PER_CLIENT, 'every one');
    for (let c = 0; c < 10; c++) {
      const keys = messages.filter((message) => message.content.toString().startsWith(`${c}:`)).map((message) => message.fields.routingKey.split('.')[0]);
      const switchAt = keys.indexOf('new');
      assert.ok(switchAt > 0, `client ${c} published under both rules`);
      assert.deepEqual([...new Set(keys.slice(0, switchAt))], ['old']);
      assert.deepEqual([...new Set(keys.slice(switchAt))], ['new'], `client ${c}: no old key after the first new one`);
    }
    assert.deepEqual(disconnects, [], 'the devices stayed connected');
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_config_reloads_total', { result: 'applied' }), 1);
  } finally {
    await Promise.all(clients.map((client) => client.endAsync()));
    await bridge.stop();
  }
});

test('reload - downlink: a removed rule stops (its queue is unbound, not deleted), a new rule starts', async () => {
  const commands = uniqueName('reload-commands');
  const queueA = uniqueName('reload-a');
  const queueB = uniqueName('reload-b');
  const bridge = await startTestBridge({
    amqp: { exchanges: [transientExchange(commands)] },
    downlink: [{ name: 'a', exchange: commands, routingKey: 'a.{id}', topic: 'a/{id}', qos: 1, queueName: queueA }],
  });
  const device = await connectClient(bridge.url('tcp'));
  const received: string[] = [];
  device.on('message', (topic) => received.push(topic));
  const send = async (key: string) => {
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createConfirmChannel();
    channel.publish(commands, key, Buffer.from(key));
    await channel.waitForConfirms();
    await connection.close();
  };
  try {
    await device.subscribeAsync('#', { qos: 1 });
    await send('a.1');
    await waitFor(() => received.includes('a/1'), 'a/1 through rule a');
    await bridge.bridge.reload(configWith(bridge.config, { downlink: [{ name: 'b', exchange: commands, routingKey: 'b.{id}', topic: 'b/{id}', qos: 1, queueName: queueB }] }));
    await send('a.2');
    await send('b.1');
    await waitFor(() => received.includes('b/1'), 'b/1 through the new rule b');
    await delay(300);
    assert.deepEqual(received, ['a/1', 'b/1']);
    const left = await withChannel((channel) => channel.checkQueue(queueA));
    assert.equal(left.consumerCount, 0, 'rule a no longer consumes');
    assert.equal(left.messageCount, 0, 'and its queue, unbound, no longer collects');
  } finally {
    await device.endAsync();
    await bridge.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(queueA);
      await channel.deleteQueue(queueB);
      await channel.deleteExchange(commands);
    }).catch(() => {});
  }
});

test('reload - users and ACL change at once; connected devices stay; restart-only settings are reported and kept', async () => {
  const bridge = await startTestBridge({
    auth: { users: [{ username: 'old-user', password: await hashPassword('pw') }] },
    acl: [{ allow: 'publish', topic: 'x/#' }],
    uplink: [{ name: 'all', topic: '#', exchange, routingKey: 'acl.{#}' }],
  });
  const connected = await connectClient(bridge.url('tcp'), { username: 'old-user', password: 'pw' });
  let closed = false;
  connected.on('close', () => {
    closed = true;
  });
  try {
    const result = await bridge.bridge.reload(
      configWith(bridge.config, {
        auth: { users: [{ username: 'new-user', password: await hashPassword('pw2') }] },
        acl: [{ allow: 'publish', topic: 'y/#' }],
        flow: { maxPendingMessages: 5 },
        // Only the listeners change (the rest as the bridge runs, its persistence included).
        mqtt: { ...(structuredClone(bridge.config.mqtt) as BridgeConfigInput['mqtt']), listeners: [{ type: 'tcp', host: '127.0.0.1', port: 1 }] },
      }),
    );
    assert.deepEqual(result.applied, ['auth', 'acl']);
    assert.deepEqual(result.restartRequired, ['mqtt.listeners', 'flow.maxPendingMessages']);
    assert.equal(bridge.bridge.listeners.length, 2, 'the listeners kept their ports');
    await assert.rejects(connectClient(bridge.url('tcp'), { username: 'old-user', password: 'pw' }), /Bad username or password/);
    const fresh = await connectClient(bridge.url('tcp'), { username: 'new-user', password: 'pw2' });
    const start = consumer.messages.length;
    await fresh.publishAsync('y/1', 'allowed now', { qos: 1 });
    await fresh.endAsync();
    await consumer.waitForCount(start + 1);
    assert.equal(consumer.messages[start]!.fields.routingKey, 'acl.y.1');
    assert.equal(closed, false, 'the device connected before the reload is still connected');
  } finally {
    connected.end(true);
    await bridge.stop();
  }
});

test('reload - through the CLI: a broken file changes nothing and every problem is logged; SIGHUP and --watch apply a good one', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'bridge-reload-'));
  const file = join(folder, 'bridge.yaml');
  const write = (routingKey: string, extra = '') =>
    writeFileSync(
      file,
      [
        'mqtt:',
        '  listeners: [{ type: tcp, host: 127.0.0.1, port: 0 }]',
        'amqp:',
        `  url: ${AMQP_URL}`,
        'http: { port: 0 }',
        'uplink:',
        `  - { name: cli, topic: "cli/#", exchange: ${exchange}, routingKey: "${routingKey}" }`,
        extra,
        '',
      ].join('\n'),
    );
  write('first.{#}');
  const bridge = runBridgeProcess(['--config', file, '--watch']);
  try {
    await waitForAmqp(bridge);
    const port = new URL(String(bridge.lines.find((line) => line.listener === 'tcp')!.address)).port;
    const device = await connectClient(`mqtt://127.0.0.1:${port}`);
    let closed = false;
    device.on('close', () => {
      closed = true;
    });
    const routed = async (topic: string) => {
      const start = consumer.messages.length;
      await device.publishAsync(topic, 'x', { qos: 1 });
      const [message] = (await consumer.waitForCount(start + 1)).slice(start);
      return message!.fields.routingKey;
    };
    /** The log lines of the reloads started for `why` after line `mark` (reloads never overlap). */
    const reloadLines = (mark: number, why: string) => {
      const lines: Array<Record<string, unknown>> = [];
      let current: string | undefined;
      for (const line of bridge.lines.slice(mark)) {
        if (line.msg === 'reloading the configuration') current = String(line.why);
        if (current === why) lines.push(line);
      }
      return lines;
    };
    assert.equal(await routed('cli/a'), 'first.a');

    // A broken file: YAML syntax error plus a bad template. (--watch sees it too: either way, nothing changes.)
    writeFileSync(file, `mqtt:\n  listeners: [{ type: tcp, port: 0 }\nuplink:\n  - { name: cli, topic: "cli/#", exchange: ${exchange}, routingKey: "{nope}" }\n`);
    bridge.child.kill('SIGHUP');
    await waitFor(() => bridge.lines.some((line) => line.msg === 'the configuration has problems: nothing was changed'), 'the broken reload to be reported');
    const problem = bridge.lines.find((line) => typeof line.msg === 'string' && line.msg.startsWith(`${file}:`) && line.level === 50);
    assert.match(String(problem?.msg), new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+: `));
    assert.equal(await routed('cli/b'), 'first.b', 'the old rules still route');

    // A good file, picked up by --watch alone.
    let mark = bridge.lines.length;
    write('second.{#}');
    await waitFor(() => reloadLines(mark, 'file changed').some((line) => line.msg === 'configuration reloaded: uplink'), 'the watched file to be reloaded');
    assert.equal(await routed('cli/c'), 'second.c');

    // And by SIGHUP, with a change that needs a restart. The signal goes at once, so that its
    // reload runs before the watcher's (debounced) one and is the one that applies the file.
    mark = bridge.lines.length;
    write('third.{#}', 'shutdownTimeoutMs: 1234');
    bridge.child.kill('SIGHUP');
    await waitFor(
      () => reloadLines(mark, 'SIGHUP').some((line) => typeof line.msg === 'string' && line.msg.startsWith('these changes need a restart and keep their old values: shutdownTimeoutMs')),
      'the SIGHUP reload to report the restart-only change',
    );
    assert.ok(reloadLines(mark, 'SIGHUP').some((line) => line.msg === 'configuration reloaded: uplink'), 'the SIGHUP reload applied the new uplink rules');
    assert.equal(await routed('cli/d'), 'third.d');
    assert.equal(closed, false, 'the device stayed connected through every reload');
    await device.endAsync();
  } finally {
    bridge.child.kill('SIGTERM');
    await bridge.exit;
  }
});

/** Publishes one message on AMQP, waiting for RabbitMQ's confirm (it is routed by then). */
const publishCommand = (to: string, routingKey: string) => publishConfirmed(to, routingKey, routingKey);

// Before issue 11 such a reload was rejected and changed nothing. A refusal is now a configuration
// error of that exchange alone: the rest of the reload applies, and only what needs the exchange waits.
test('reload - an added exchange RabbitMQ refuses (it exists with another type) is reported once; the rest of the reload applies, and the bridge still reconnects and forwards', async () => {
  const clash = uniqueName('reload-clash');
  const connectionName = uniqueName('bridge-reload-clash');
  await withChannel((channel) => channel.assertExchange(clash, 'fanout', { durable: false, autoDelete: false }));
  const logs = captureLogs();
  const bridge = await startTestBridge(
    {
      amqp: { connectionName, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } },
      uplink: [{ name: 'clash', topic: 'clash/#', exchange, routingKey: 'clash.before.{#}' }],
    },
    { logger: logs.logger },
  );
  const device = await connectClient(bridge.url('tcp'));
  const refusalsLogged = () => logs.lines.filter((line) => line.code === 'BRIDGE_ERR_BROKER_REFUSED');
  try {
    const result = await bridge.bridge.reload(
      configWith(bridge.config, {
        amqp: { ...bridge.config.amqp, exchanges: [{ name: clash, type: 'topic', durable: false, autoDelete: false }] },
        uplink: [{ name: 'clash', topic: 'clash/#', exchange, routingKey: 'clash.after.{#}' }],
      }),
    );
    assert.deepEqual(result.applied, ['amqp.exchanges', 'uplink']);
    assert.equal(refusalsLogged().length, 1);
    assert.equal(refusalsLogged()[0]!.exchange, clash);
    assert.equal(refusalsLogged()[0]!.argument, 'type');
    const readiness = bridge.bridge.readiness();
    assert.equal(readiness.ready, true);
    assert.equal(readiness.degraded.length, 1);
    assert.match(readiness.degraded[0]!, new RegExp(`exchange "${clash}" refused by RabbitMQ \\(406 PRECONDITION_FAILED - inequivalent arg 'type'`));
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_amqp_refused', { kind: 'exchange' }), 1);
    assert.equal(await closeConnectionsNamed(connectionName), 1);
    await waitFor(async () => bridge.bridge.amqpState === 'connected' && (await connectionPids(connectionName)).length === 1, 'the bridge to reconnect', 20_000);
    const start = consumer.messages.length;
    await device.publishAsync('clash/x', 'after the reload', { qos: 1 });
    await waitFor(() => consumer.messages.slice(start).some((message) => message.fields.routingKey.startsWith('clash.')), 'the publish on AMQP');
    const forwarded = consumer.messages.slice(start).find((message) => message.fields.routingKey.startsWith('clash.'))!;
    assert.equal(forwarded.fields.routingKey, 'clash.after.x', 'the new uplink rule routes');
    assert.equal(forwarded.content.toString(), 'after the reload');
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_config_reloads_total', { result: 'applied' }), 1);
    assert.equal(refusalsLogged().length, 1, 'declared again on the new connection, refused again, not reported again');
    assert.equal(bridge.bridge.readiness().degraded.length, 1);
  } finally {
    await device.endAsync();
    await bridge.stop();
    await deleteExchanges(clash);
  }
});

test('reload - while RabbitMQ is away: once the bridge is back, a removed rule\'s queue and a changed rule\'s old key are unbound', async () => {
  const commands = uniqueName('reload-away');
  const queueGone = uniqueName('reload-gone');
  const queueMoved = uniqueName('reload-moved');
  const connectionName = uniqueName('bridge-reload-away');
  const bridge = await startTestBridge({
    // A reconnect delay long enough for the reload to happen while the bridge is disconnected.
    amqp: { connectionName, exchanges: [transientExchange(commands)], reconnect: { initialDelayMs: 3_000, maxDelayMs: 3_000 } },
    downlink: [
      { name: 'gone', exchange: commands, routingKey: 'gone.{id}', topic: 'gone/{id}', qos: 1, queueName: queueGone },
      { name: 'moved', exchange: commands, routingKey: 'old.{id}', topic: 'moved/{id}', qos: 1, queueName: queueMoved },
    ],
  });
  const device = await connectClient(bridge.url('tcp'));
  const received: string[] = [];
  device.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
  try {
    await device.subscribeAsync('#', { qos: 1 });
    assert.equal(await closeConnectionsNamed(connectionName), 1);
    await waitFor(() => bridge.bridge.amqpState === 'disconnected', 'the bridge to see the connection go');
    await bridge.bridge.reload(
      configWith(bridge.config, { downlink: [{ name: 'moved', exchange: commands, routingKey: 'new.{id}', topic: 'moved/{id}', qos: 1, queueName: queueMoved }] }),
    );
    assert.equal(bridge.bridge.amqpState, 'disconnected', 'the reload ran while RabbitMQ was away');
    await waitFor(() => bridge.bridge.amqpState === 'connected', 'the bridge to reconnect', 20_000);
    await publishCommand(commands, 'gone.1');
    await publishCommand(commands, 'old.1');
    await publishCommand(commands, 'new.1');
    await waitFor(() => received.includes('moved/1 new.1'), 'new.1 through the changed rule');
    await delay(300);
    assert.deepEqual(received, ['moved/1 new.1'], 'nothing by the old key');
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_downlink_rejected_total', { rule: 'moved', reason: 'unmatched' }), 0, 'no old-key message reached the changed rule');
    const gone = await withChannel((channel) => channel.checkQueue(queueGone));
    assert.deepEqual([gone.consumerCount, gone.messageCount], [0, 0], 'the removed rule\'s queue is not consumed and, unbound, does not collect');
  } finally {
    await device.endAsync();
    await bridge.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(queueGone);
      await channel.deleteQueue(queueMoved);
      await channel.deleteExchange(commands);
    }).catch(() => {});
  }
});

test('reload - removing a rule whose consumer cannot start (its queue exists with other arguments) still unbinds the queue', async () => {
  const commands = uniqueName('reload-retrying');
  const queue = uniqueName('reload-retrying-q');
  const rule = { name: 'a', exchange: commands, routingKey: 'a.{id}', topic: 'a/{id}', qos: 1, queueName: queue } as const;
  const bridge = await startTestBridge({ amqp: { exchanges: [transientExchange(commands)] }, downlink: [rule] });
  try {
    // The queue was declared without a dead-letter exchange: the changed rule's consumer cannot start, and retries.
    await bridge.bridge.reload(configWith(bridge.config, { downlink: [{ ...rule, deadLetterExchange: uniqueName('dlx') }] }));
    await publishCommand(commands, 'a.1');
    const waiting = await withChannel((channel) => channel.checkQueue(queue));
    assert.deepEqual([waiting.consumerCount, waiting.messageCount], [0, 1], 'not consumed, still bound');
    await bridge.bridge.reload(configWith(bridge.config, { downlink: [] }));
    await publishCommand(commands, 'a.2');
    const left = await withChannel((channel) => channel.checkQueue(queue));
    assert.deepEqual([left.consumerCount, left.messageCount], [0, 1], 'a.2 was not routed to the queue: it is unbound');
  } finally {
    await bridge.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(queue);
      await channel.deleteExchange(commands);
    }).catch(() => {});
  }
});
