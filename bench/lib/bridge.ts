import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';
import { AMQP_URL, waitFor } from '../../test/helpers/amqp.js';
import { runBridgeProcess, waitForAmqp } from '../../test/helpers/bridge-process.js';

export interface RunningBridge {
  /** The MQTT endpoint the load connects to. */
  url: string;
  /** Routing keys of this run start with this word (topics with `${prefix}/`). */
  prefix: string;
  pid: number | null;
  /** Every process doing the bridge's work (with `--workers`: the primary and its workers), for CPU figures. */
  pids: number[];
  /** The bridge's AMQP connection name, for `rabbitmqctl close_connection`. */
  connectionName: string;
  /** Exchange the downlink rules consume from. */
  commands: string;
  lines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Starts the bridge as its own process, from the build (dist/) when there is one, with the
 * mapping of RabbitMQ's MQTT plugin (`#` -> amq.topic, routing key `{#}`) and two downlink rules.
 * `mqttYaml`: more lines under `mqtt:` (indented), such as a `persistence`. `workers`: `run --workers N`.
 * `amqp10`: the same uplink mapping spoken in AMQP 1.0 to RabbitMQ's rabbitmq_amqp1_0 plugin
 * (address `/exchange/amq.topic`, the subject as routing key), and no downlink rules.
 */
export async function startBridge(name: string, extraYaml: string[] = [], mqttYaml: string[] = [], options: { workers?: number; amqp10?: boolean } = {}): Promise<RunningBridge> {
  const { workers = 1, amqp10 = false } = options;
  const prefix = name.replace(/[^a-z0-9]/gi, '');
  const commands = `${name}-commands`;
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-bench-')), 'bridge.yaml');
  writeFileSync(
    file,
    [
      'mqtt:',
      '  listeners: [{ type: tcp, host: 127.0.0.1, port: 0 }]',
      '  maxConnections: 1000000',
      ...mqttYaml,
      ...(amqp10
        ? ['amqp:', '  protocol: "1.0"', `  url: ${AMQP_URL}`, `  containerId: ${name}`, 'uplink:', '  - { name: compat, topic: "#", address: /exchange/amq.topic, subject: "{#}" }']
        : [
            'amqp:',
            `  url: ${AMQP_URL}`,
            `  connectionName: ${name}`,
            `  exchanges: [{ name: ${commands}, type: topic, durable: false, autoDelete: false }]`,
            'uplink:',
            '  - { name: compat, topic: "#", exchange: amq.topic, routingKey: "{#}" }',
            'downlink:',
            `  - { name: down0, exchange: ${commands}, routingKey: "down0.{device}", topic: "${prefix}/down0/{device}", qos: 0, queueName: ${commands}-0, prefetch: 1000 }`,
            `  - { name: down1, exchange: ${commands}, routingKey: "down1.{device}", topic: "${prefix}/down1/{device}", qos: 1, queueName: ${commands}-1, prefetch: 1000 }`,
          ]),
      'http: { enabled: false }',
      'log: { level: info }',
      ...extraYaml,
      // BENCH_BRIDGE_YAML: more top-level configuration for the bridge under test (a setting to measure), newline-separated.
      ...(process.env.BENCH_BRIDGE_YAML?.split('\n') ?? []),
      '',
    ].join('\n'),
  );
  // BENCH_PROFILE=1: a CPU profile of the bridge in .bench-out/profiles (node --cpu-prof).
  // BENCH_BRIDGE_NODE_FLAGS: more flags for the bridge's node only (GC settings, say), space-separated.
  const nodeFlags = [
    ...(process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=.bench-out/profiles'] : []),
    ...(process.env.BENCH_BRIDGE_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
  ];
  const bridge = runBridgeProcess(['--config', file, ...(workers > 1 ? ['--workers', String(workers)] : [])], {}, { fromBuild: existsSync('dist/cli/bin.js'), nodeFlags });
  const { child, lines } = bridge;
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  await waitForAmqp(bridge, 60_000);
  const running = () => bridge.lines.find((line) => line.msg === `bridge running with ${workers} workers`);
  if (workers > 1) await waitFor(() => running() !== undefined, `the ${workers} workers to run`, 60_000);
  const workerPids = workers > 1 ? (running()!.pids as number[]) : [];
  const listening = () => lines.find((line) => line.listener === 'tcp');
  await waitFor(() => listening() !== undefined, 'the bridge to listen', 10_000);
  const port = Number(new URL(String(listening()!.address)).port);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    prefix,
    pid: child.pid ?? null,
    pids: [...(child.pid ? [child.pid] : []), ...workerPids],
    connectionName: name,
    commands,
    lines,
    async stop() {
      child.kill('SIGTERM');
      await bridge.exit;
      process.off('exit', kill);
      const connection = await amqplib.connect(AMQP_URL);
      const channel = await connection.createChannel();
      await channel.deleteExchange(commands).catch(() => {});
      for (const queue of [`${commands}-0`, `${commands}-1`]) await channel.deleteQueue(queue).catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}

/** Another MQTT endpoint forwarding into the same RabbitMQ with the plugin's mapping (`--compare`). */
export function externalEndpoint(url: string, name: string): RunningBridge {
  return {
    url,
    prefix: name.replace(/[^a-z0-9]/gi, ''),
    pid: null,
    pids: [],
    connectionName: '',
    commands: '',
    lines: [],
    stop: async () => {},
  };
}
