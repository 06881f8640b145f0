import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createBridge, type Bridge } from '../../src/bridge.js';
import { loadLocatedConfigFile } from '../../src/config/load.js';
import { AMQP_URL, delay, publishConfirmed, TestConsumer, uniqueName, waitFor, withChannel } from '../helpers/amqp.js';
import { connectClient, TRANSPORTS, type Transport } from '../helpers/bridge.js';
import { runCli } from '../helpers/cli.js';
import { captureLogs } from '../helpers/log-capture.js';
import { RawMqttClient } from '../helpers/raw-mqtt.js';

/**
 * Exchanges and queues RabbitMQ refuses (issue 11, part 2): each is reported once, at error
 * level, with the entry's FILE:LINE:COL and what to change; /readyz stays 200 and lists it; the
 * metric counts it; only the rules that need it wait, every other rule flows.
 */

const LEVEL_ERROR = 50;
const PUBLISH_TIMEOUT_MS = 1_500;

/** A configuration file of the test's own, and the bridge running it (listeners, HTTP on free ports). */
class ConfiguredBridge {
  readonly logs = captureLogs();
  readonly file: string;
  bridge!: Bridge;

  constructor(private text: string) {
    this.file = join(mkdtempSync(join(tmpdir(), 'bridge-conflicts-')), 'bridge.yaml');
    writeFileSync(this.file, text);
  }

  async start(): Promise<this> {
    const { config, locate } = loadLocatedConfigFile(this.file, { env: { AMQP_URL } });
    this.bridge = createBridge({ config, logger: this.logs.logger, locate, processMetrics: false });
    await this.bridge.start();
    await this.bridge.ready();
    return this;
  }

  /** Writes a new configuration and reloads it, as the CLI does. */
  async reload(text: string): Promise<void> {
    this.text = text;
    writeFileSync(this.file, text);
    const { config, locate } = loadLocatedConfigFile(this.file, { env: { AMQP_URL } });
    await this.bridge.reload(config, { locate });
  }

  /** FILE:LINE:COL of the first occurrence of `needle` in the configuration text. */
  at(needle: string): string {
    const offset = this.text.indexOf(needle);
    assert.notEqual(offset, -1, `${needle} is in the configuration`);
    const before = this.text.slice(0, offset).split('\n');
    return `${this.file}:${before.length}:${before.at(-1)!.length + 1}`;
  }

  /** The error lines reporting what RabbitMQ refused, for one exchange or queue. */
  refusalsOf(kind: 'exchange' | 'queue', name: string): Array<Record<string, unknown>> {
    return this.logs.lines.filter((line) => line.code === 'BRIDGE_ERR_BROKER_REFUSED' && line[kind] === name);
  }

  url(transport: Transport): string {
    const listener = this.bridge.listeners.find((candidate) => candidate.type === transport)!;
    return transport === 'tcp' ? `mqtt://127.0.0.1:${listener.port}` : `ws://127.0.0.1:${listener.port}/mqtt`;
  }

  async get(path: string): Promise<{ status: number; text: string }> {
    const response = await fetch(`http://127.0.0.1:${this.bridge.http!.port}${path}`);
    return { status: response.status, text: await response.text() };
  }

  /** The value of one sample of /metrics, e.g. `mqtt_amqp_bridge_amqp_refused{kind="exchange"}`. */
  async sample(name: string): Promise<number> {
    const { text } = await this.get('/metrics');
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
    return line === undefined ? 0 : Number(line.slice(name.length + 1));
  }
}

const LISTENERS = `mqtt:
  listeners:
    - { type: tcp, host: 127.0.0.1, port: 0 }
    - { type: ws, host: 127.0.0.1, port: 0, path: /mqtt }
http: { host: 127.0.0.1, port: 0 }
`;

/** Publishes QoS 1 and expects no PUBACK: the bridge gives up after publishTimeoutMs and closes the connection. */
async function publishUnacknowledged(transport: Transport, url: string, topic: string): Promise<number> {
  const raw = await RawMqttClient.open(transport, url);
  try {
    assert.equal((await raw.connect(uniqueName('held'))).returnCode, 0);
    const sent = Date.now();
    raw.send({ cmd: 'publish', topic, payload: Buffer.from('held'), qos: 1, messageId: 1, dup: false, retain: false });
    assert.equal(await raw.nextOrClose('puback', PUBLISH_TIMEOUT_MS + 5_000), null, 'no PUBACK: the connection is closed instead');
    return Date.now() - sent;
  } finally {
    raw.destroy();
  }
}

describe('broker conflicts at start: a non-durable exchange the configuration declares durable, one of another type, a reserved name, a missing queue', () => {
  const durableClash = uniqueName('bc-transient');
  const typeClash = uniqueName('bc-fanout');
  const reserved = `amq.${uniqueName('bc')}`;
  const good = uniqueName('bc-good');
  const missingQueue = uniqueName('bc-missing');
  const commandsQueue = uniqueName('bc-commands');
  let bridge: ConfiguredBridge;
  let goodConsumer: TestConsumer;
  let fanoutConsumer: TestConsumer;

  before(async () => {
    await withChannel(async (channel) => {
      await channel.assertExchange(durableClash, 'topic', { durable: false, autoDelete: false });
      await channel.assertExchange(typeClash, 'fanout', { durable: false, autoDelete: false });
    });
    bridge = await new ConfiguredBridge(`${LISTENERS}amqp:
  url: \${AMQP_URL}
  publishTimeoutMs: ${PUBLISH_TIMEOUT_MS}
  exchanges:
    - { name: ${good}, type: topic, durable: false }
    - { name: ${durableClash}, type: topic }
    - { name: ${typeClash}, type: topic, durable: false }
    - { name: ${reserved}, durable: false }
uplink:
  - { name: durable-clash, topic: "clash/durable/#", exchange: ${durableClash}, routingKey: "{#}" }
  - { name: type-clash, topic: "clash/type/#", exchange: ${typeClash}, routingKey: "{#}" }
  - { name: good, topic: "good/#", exchange: ${good}, routingKey: "{#}" }
downlink:
  - { name: missing-queue, queue: ${missingQueue}, topic: "missing/{routingKey}", qos: 1 }
  - { name: commands, exchange: ${good}, routingKey: "cmd.{id}", topic: "cmd/{id}", qos: 1, queueName: ${commandsQueue} }
`).start();
    goodConsumer = await TestConsumer.create([{ exchange: good, key: '#' }]);
    fanoutConsumer = await TestConsumer.create([{ exchange: typeClash, key: '' }]);
  });

  after(async () => {
    await goodConsumer?.close();
    await fanoutConsumer?.close();
    await bridge?.bridge.stop();
    await withChannel(async (channel) => {
      await channel.deleteQueue(commandsQueue);
      for (const exchange of [good, durableClash, typeClash]) await channel.deleteExchange(exchange);
    }).catch(() => {});
  });

  test('broker conflicts - a durable exchange that exists non-durable: reported once, at error level, with the argument, FILE:LINE:COL and what to change', () => {
    const reports = bridge.refusalsOf('exchange', durableClash);
    assert.equal(reports.length, 1);
    const [report] = reports as [Record<string, unknown>];
    assert.equal(report.level, LEVEL_ERROR);
    assert.equal(report.err, undefined, 'no stack trace');
    assert.deepEqual([report.replyCode, report.argument, report.declared, report.current], [406, 'durable', 'true', 'false']);
    const entry = bridge.at(`{ name: ${durableClash}`);
    assert.equal(report.config, `${entry} (amqp.exchanges[1])`);
    assert.deepEqual(report.held, ['uplink rule durable-clash']);
    const msg = String(report.msg);
    assert.match(msg, new RegExp(`^RabbitMQ refused exchange "${durableClash}" \\(406 PRECONDITION_FAILED - inequivalent arg 'durable'`));
    assert.ok(msg.includes(`RabbitMQ has it with durable false, the configuration declares true: set durable: false at ${entry} (amqp.exchanges[1].durable)`), msg);
    assert.ok(msg.includes('or delete it on RabbitMQ (its bindings go with it) so that the bridge declares it as configured'), msg);
    assert.ok(msg.includes('Uplink rule durable-clash waits until it is fixed; everything else flows'), msg);
  });

  test('broker conflicts - an exchange of another type: reported once, naming the type both have and where to change it', () => {
    const reports = bridge.refusalsOf('exchange', typeClash);
    assert.equal(reports.length, 1);
    const [report] = reports as [Record<string, unknown>];
    assert.equal(report.level, LEVEL_ERROR);
    assert.deepEqual([report.replyCode, report.argument, report.declared, report.current], [406, 'type', 'topic', 'fanout']);
    const typeAt = bridge.at(`topic, durable: false }\n    - { name: ${reserved}`); // the value of exchanges[2].type
    assert.ok(String(report.msg).includes(`set type: fanout at ${typeAt} (amqp.exchanges[2].type)`), String(report.msg));
  });

  test('broker conflicts - an exchange name RabbitMQ reserves (403): reported once, saying to rename it', () => {
    const reports = bridge.refusalsOf('exchange', reserved);
    assert.equal(reports.length, 1);
    assert.equal(reports[0]!.replyCode, 403);
    assert.ok(String(reports[0]!.msg).includes(`names starting with "amq." are RabbitMQ's own: rename it at ${bridge.at(`{ name: ${reserved}`)} (amqp.exchanges[3])`));
    assert.ok(String(reports[0]!.msg).includes('No rule names it; only what is routed to it waits'), String(reports[0]!.msg));
  });

  test("broker conflicts - a downlink rule's queue that does not exist: reported once, naming the queue, its FILE:LINE:COL and what to do", () => {
    const reports = bridge.refusalsOf('queue', missingQueue);
    assert.equal(reports.length, 1);
    const [report] = reports as [Record<string, unknown>];
    assert.equal(report.level, LEVEL_ERROR);
    assert.equal(report.replyCode, 404);
    assert.equal(report.config, `${bridge.at(missingQueue)} (downlink[0].queue)`);
    assert.ok(String(report.msg).includes('create the queue on RabbitMQ (the bridge consumes a rule\'s queue but does not declare it)'), String(report.msg));
    assert.deepEqual(report.held, ['downlink rule missing-queue']);
  });

  test('broker conflicts - /readyz answers 200 and lists each refusal under degraded; amqp_refused counts them', async () => {
    const { status, text } = await bridge.get('/readyz');
    assert.equal(status, 200);
    const body = JSON.parse(text) as { ready: boolean; reasons: string[]; degraded: string[] };
    assert.equal(body.ready, true);
    assert.deepEqual(body.reasons, []);
    assert.equal(body.degraded.length, 4);
    for (const [name, entry] of [
      [durableClash, 'amqp.exchanges[1]'],
      [typeClash, 'amqp.exchanges[2]'],
      [reserved, 'amqp.exchanges[3]'],
      [missingQueue, 'downlink[0].queue'],
    ] as const) {
      assert.ok(body.degraded.some((line) => line.includes(`"${name}" refused by RabbitMQ`) && line.includes(`${bridge.file}:`) && line.includes(`(${entry})`)), `${name} in ${text}`);
    }
    assert.equal(await bridge.sample('mqtt_amqp_bridge_amqp_refused{kind="exchange"}'), 3);
    assert.equal(await bridge.sample('mqtt_amqp_bridge_amqp_refused{kind="queue"}'), 1);
  });

  for (const transport of TRANSPORTS) {
    describe(`over ${transport}`, () => {
      test(`broker conflicts ${transport} - the other uplink rule forwards meanwhile, byte for byte`, async () => {
        const device = await connectClient(bridge.url(transport));
        try {
          const payload = Buffer.from([0, 1, 2, 0xff, 0xfe, transport.length]);
          const before = goodConsumer.messages.length;
          await device.publishAsync(`good/${transport}/bytes`, payload, { qos: 1 });
          const [message] = (await goodConsumer.waitForCount(before + 1)).slice(before);
          assert.equal(message!.fields.routingKey, `${transport}.bytes`);
          assert.deepEqual(message!.content, payload);
        } finally {
          await device.endAsync();
        }
      });

      test(`broker conflicts ${transport} - the other downlink rule delivers to a device meanwhile`, async () => {
        const device = await connectClient(bridge.url(transport));
        const received: string[] = [];
        device.on('message', (topic, payload) => received.push(`${topic} ${payload.toString('hex')}`));
        try {
          await device.subscribeAsync('cmd/#', { qos: 1 });
          await publishConfirmed(good, `cmd.${transport}`, Buffer.from([0xde, 0xad, 0x00]));
          await waitFor(() => received.length === 1, 'the command at the device');
          assert.deepEqual(received, [`cmd/${transport} dead00`]);
        } finally {
          await device.endAsync();
        }
      });

      test(`broker conflicts ${transport} - a QoS 1 publish on a rule whose exchange is refused gets no PUBACK and times out`, async () => {
        const failedBefore = await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'timeout' });
        const waited = await publishUnacknowledged(transport, bridge.url(transport), `clash/durable/${transport}`);
        assert.ok(waited >= PUBLISH_TIMEOUT_MS - 100, `not before amqp.publishTimeoutMs (${waited} ms)`);
        assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_failed_total', { reason: 'timeout' }), failedBefore + 1);
        assert.equal(bridge.refusalsOf('exchange', durableClash).length, 1, 'not reported again');
      });

      test(`broker conflicts ${transport} - a QoS 0 publish on a rule whose exchange is refused is dropped and counted, and never reaches it`, async () => {
        const droppedBefore = await bridge.sample('mqtt_amqp_bridge_uplink_dropped_total{reason="exchange_refused"}');
        const device = await connectClient(bridge.url(transport));
        try {
          await device.publishAsync(`clash/type/${transport}`, 'dropped', { qos: 0 });
          await waitFor(async () => (await bridge.sample('mqtt_amqp_bridge_uplink_dropped_total{reason="exchange_refused"}')) === droppedBefore + 1, 'the drop to be counted');
          const before = goodConsumer.messages.length;
          await device.publishAsync(`good/${transport}/after`, 'after', { qos: 1 });
          await goodConsumer.waitForCount(before + 1);
          assert.equal(fanoutConsumer.messages.length, 0, 'nothing reached the exchange of the other type');
        } finally {
          await device.endAsync();
        }
      });
    });
  }
});

describe('broker conflicts from a reload', () => {
  const good = uniqueName('bcr-good');
  const clash = uniqueName('bcr-transient');
  const missingQueue = uniqueName('bcr-missing');
  let bridge: ConfiguredBridge;
  let consumer: TestConsumer;

  const configuration = (extra: { exchanges?: string; uplink?: string; downlink?: string }) => `${LISTENERS}amqp:
  url: \${AMQP_URL}
  publishTimeoutMs: ${PUBLISH_TIMEOUT_MS}
  exchanges:
    - { name: ${good}, type: topic, durable: false }
${extra.exchanges ?? ''}uplink:
  - { name: good, topic: "good/#", exchange: ${good}, routingKey: "{#}" }
${extra.uplink ?? ''}${extra.downlink ? `downlink:\n${extra.downlink}` : ''}`;

  before(async () => {
    await withChannel((channel) => channel.assertExchange(clash, 'topic', { durable: false, autoDelete: false }));
    bridge = await new ConfiguredBridge(configuration({})).start();
    consumer = await TestConsumer.create([{ exchange: good, key: '#' }]);
  });

  after(async () => {
    await consumer?.close();
    await bridge?.bridge.stop();
    await withChannel(async (channel) => {
      await channel.deleteExchange(good);
      await channel.deleteExchange(clash);
    }).catch(() => {});
  });

  test('broker conflicts - a reload adding a durable exchange that exists non-durable and a rule on a missing queue applies; each refusal is reported once, with the new file\'s FILE:LINE:COL', async () => {
    assert.deepEqual(bridge.bridge.readiness().degraded, []);
    await bridge.reload(
      configuration({
        exchanges: `    - { name: ${clash}, type: topic }\n`,
        uplink: `  - { name: clash, topic: "clash/#", exchange: ${clash}, routingKey: "{#}" }\n`,
        downlink: `  - { name: missing, queue: ${missingQueue}, topic: "missing/{routingKey}", qos: 1 }\n`,
      }),
    );
    const [exchangeReport, ...moreExchange] = bridge.refusalsOf('exchange', clash);
    assert.equal(moreExchange.length, 0);
    assert.equal(exchangeReport!.level, LEVEL_ERROR);
    assert.equal(exchangeReport!.argument, 'durable');
    assert.equal(exchangeReport!.config, `${bridge.at(`{ name: ${clash}`)} (amqp.exchanges[1])`);
    assert.ok(String(exchangeReport!.msg).includes(`set durable: false at ${bridge.at(`{ name: ${clash}`)}`));
    const [queueReport, ...moreQueue] = bridge.refusalsOf('queue', missingQueue);
    assert.equal(moreQueue.length, 0);
    assert.equal(queueReport!.config, `${bridge.at(missingQueue)} (downlink[0].queue)`);
    const { status, text } = await bridge.get('/readyz');
    assert.equal(status, 200);
    assert.equal((JSON.parse(text) as { degraded: string[] }).degraded.length, 2);
    assert.equal(await bridge.sample('mqtt_amqp_bridge_amqp_refused{kind="exchange"}'), 1);
    assert.equal(await bridge.sample('mqtt_amqp_bridge_amqp_refused{kind="queue"}'), 1);
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_config_reloads_total', { result: 'applied' }), 1);
  });

  for (const transport of TRANSPORTS) {
    test(`broker conflicts ${transport} - after the reload the other rule forwards, and the refused exchange's rule gets no PUBACK`, async () => {
      const device = await connectClient(bridge.url(transport));
      try {
        const before = consumer.messages.length;
        await device.publishAsync(`good/${transport}`, Buffer.from('still flowing'), { qos: 1 });
        const [message] = (await consumer.waitForCount(before + 1)).slice(before);
        assert.equal(message!.content.toString(), 'still flowing');
      } finally {
        await device.endAsync();
      }
      await publishUnacknowledged(transport, bridge.url(transport), `clash/${transport}`);
    });
  }

  test('broker conflicts - a reload that no longer asks for what was refused ends the refusals', async () => {
    await bridge.reload(configuration({}));
    assert.deepEqual(bridge.bridge.readiness().degraded, []);
    assert.equal(await bridge.sample('mqtt_amqp_bridge_amqp_refused{kind="exchange"}'), 0);
    assert.equal(await bridge.sample('mqtt_amqp_bridge_amqp_refused{kind="queue"}'), 0);
    assert.equal(bridge.refusalsOf('exchange', clash).length, 1, 'reported once in all');
  });
});

test('broker conflicts - retries are slow and silent; once the conflict is removed on RabbitMQ, the held QoS 1 publish goes out and is acknowledged', async () => {
  const clash = uniqueName('bc-fixed');
  await withChannel((channel) => channel.assertExchange(clash, 'topic', { durable: false, autoDelete: false }));
  const bridge = await new ConfiguredBridge(`${LISTENERS}amqp:
  url: \${AMQP_URL}
  publishTimeoutMs: 20000
  refusedRetryMs: 300
  exchanges:
    - { name: ${clash}, type: topic }
uplink:
  - { name: clash, topic: "clash/#", exchange: ${clash}, routingKey: "{#}" }
`).start();
  const device = await connectClient(bridge.url('tcp'));
  try {
    let acknowledged = false;
    const publishing = device.publishAsync('clash/fixed', 'held, then sent', { qos: 1 }).then(() => (acknowledged = true));
    await delay(1_200); // about four retries
    assert.equal(acknowledged, false, 'held while RabbitMQ refuses the exchange');
    assert.equal(bridge.refusalsOf('exchange', clash).length, 1, 'retried, not reported again');
    assert.deepEqual(
      bridge.logs.lines.filter((line) => line.err !== undefined).map((line) => line.msg),
      [],
      'no stack trace logged',
    );
    await withChannel((channel) => channel.deleteExchange(clash)); // the operator removes the conflicting exchange
    await publishing; // the next retry declares it as configured and sends the held publish
    assert.equal(await bridge.bridge.metrics.value('mqtt_amqp_bridge_uplink_messages_total', { rule: 'clash', qos: '1' }), 1);
    assert.deepEqual(bridge.bridge.readiness().degraded, []);
    assert.ok(bridge.logs.lines.some((line) => line.exchange === clash && line.level === 30 && String(line.msg).includes('RabbitMQ accepts it now')));
    // RabbitMQ refuses a durable declare of a non-durable exchange: this passes only if the bridge recreated it durable.
    await withChannel((channel) => channel.assertExchange(clash, 'topic', { durable: true, autoDelete: false }));
  } finally {
    await device.endAsync();
    await bridge.bridge.stop();
    await withChannel((channel) => channel.deleteExchange(clash)).catch(() => {});
  }
});

test('broker conflicts - validate --amqp reports what RabbitMQ would refuse at each entry, and changes nothing on RabbitMQ', async () => {
  const durableClash = uniqueName('bcv-transient');
  const created = uniqueName('bcv-not-yet'); // the bridge would declare it: not a problem, and not created by validate
  const ruleExchange = uniqueName('bcv-nowhere');
  const missingQueue = uniqueName('bcv-missing');
  const ownQueue = uniqueName('bcv-own');
  const otherDlx = uniqueName('bcv-dlx');
  await withChannel(async (channel) => {
    await channel.assertExchange(durableClash, 'topic', { durable: false, autoDelete: false });
    await channel.assertQueue(ownQueue, { durable: true }); // without the dead-letter exchange the rule asks for
  });
  const config = new ConfiguredBridge(`${LISTENERS}amqp:
  exchanges:
    - { name: ${durableClash}, type: topic }
    - { name: ${created}, type: topic, durable: false }
uplink:
  - { name: clash, topic: "clash/#", exchange: ${durableClash} }
  - { name: typo, topic: "typo/#", exchange: ${ruleExchange} }
downlink:
  - { name: missing, queue: ${missingQueue}, topic: "m/{routingKey}", qos: 1 }
  - { name: own, exchange: ${created}, routingKey: "c.{id}", topic: "c/{id}", qos: 1, queueName: ${ownQueue}, deadLetterExchange: ${otherDlx} }
`);
  try {
    const result = await runCli(['validate', config.file, '--amqp', AMQP_URL]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, '');
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 4, result.stdout);
    assert.ok(lines[0]!.startsWith(`${config.at(`{ name: ${durableClash}`)}: RabbitMQ refused exchange "${durableClash}" (406 PRECONDITION_FAILED - inequivalent arg 'durable'`), lines[0]);
    assert.ok(lines[0]!.includes('set durable: false at amqp.exchanges[0].durable'), lines[0]);
    assert.ok(lines[1]!.startsWith(`${config.at(ruleExchange)}: RabbitMQ refused exchange "${ruleExchange}" (404 NOT_FOUND`), lines[1]);
    assert.ok(lines[2]!.startsWith(`${config.at(missingQueue)}: RabbitMQ refused queue "${missingQueue}" (404 NOT_FOUND`), lines[2]);
    assert.ok(lines[3]!.startsWith(`${config.at(`{ name: own`)}: RabbitMQ refused queue "${ownQueue}" (406 PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange'`), lines[3]);
    assert.ok(lines[3]!.includes('set deadLetterExchange at downlink[1].deadLetterExchange to match'), lines[3]);
    const missing = await withChannel(async (channel) => {
      const absent: string[] = [];
      await channel.checkExchange(created).catch(() => absent.push(created));
      return absent;
    });
    assert.deepEqual(missing, [created], 'validate declared nothing that was missing');
    const unreachable = await runCli(['validate', config.file, '--amqp', 'amqp://guest:secret@127.0.0.1:1']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stdout, /^amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1: cannot connect to RabbitMQ: /);
  } finally {
    await withChannel(async (channel) => {
      await channel.deleteQueue(ownQueue);
      await channel.deleteExchange(durableClash);
      await channel.deleteExchange(created);
    }).catch(() => {});
  }
});
