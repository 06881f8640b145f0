import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqplib from 'amqplib';

export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export interface RunningBridge {
  /** The MQTT endpoint the load connects to. */
  url: string;
  /** Routing keys of this run start with this word (topics with `${prefix}/`). */
  prefix: string;
  pid: number | null;
  /** The bridge's AMQP connection name, for `rabbitmqctl close_connection`. */
  connectionName: string;
  child: ChildProcess | null;
  /** Exchange the downlink rules consume from. */
  commands: string;
  lines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Starts the bridge as its own process, from the build (dist/) when there is one, with the
 * mapping of RabbitMQ's MQTT plugin (`#` -> amq.topic, routing key `{#}`) and two downlink rules.
 */
export async function startBridge(name: string, extraYaml: string[] = []): Promise<RunningBridge> {
  const prefix = name.replace(/[^a-z0-9]/gi, '');
  const commands = `${name}-commands`;
  const file = join(mkdtempSync(join(tmpdir(), 'bridge-bench-')), 'bridge.yaml');
  writeFileSync(
    file,
    [
      'mqtt:',
      '  listeners: [{ type: tcp, host: 127.0.0.1, port: 0 }]',
      '  maxConnections: 1000000',
      'amqp:',
      `  url: ${AMQP_URL}`,
      `  connectionName: ${name}`,
      `  exchanges: [{ name: ${commands}, type: topic, durable: false, autoDelete: false }]`,
      'uplink:',
      '  - { name: compat, topic: "#", exchange: amq.topic, routingKey: "{#}" }',
      'downlink:',
      `  - { name: down0, exchange: ${commands}, routingKey: "down0.{device}", topic: "${prefix}/down0/{device}", qos: 0, queueName: ${commands}-0, prefetch: 1000 }`,
      `  - { name: down1, exchange: ${commands}, routingKey: "down1.{device}", topic: "${prefix}/down1/{device}", qos: 1, queueName: ${commands}-1, prefetch: 1000 }`,
      'http: { enabled: false }',
      'log: { level: info }',
      ...extraYaml,
      '',
    ].join('\n'),
  );
  const built = existsSync('dist/cli/bin.js');
  const args = built ? ['dist/cli/bin.js'] : ['--import', 'tsx', 'src/cli/bin.ts'];
  // BENCH_PROFILE=1: a CPU profile of the bridge in .bench-out/profiles (node --cpu-prof).
  if (process.env.BENCH_PROFILE) args.unshift('--cpu-prof', '--cpu-prof-dir=.bench-out/profiles');
  const child = spawn(process.execPath, [...args, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  const lines: Array<Record<string, unknown>> = [];
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    let listening = 0;
    let connected = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const complete = buffered.split('\n');
      buffered = complete.pop()!;
      for (const text of complete) {
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        if (line.listener === 'tcp') listening = Number(new URL(String(line.address)).port);
        if (line.msg === 'AMQP connected; exchanges declared') connected = true;
        if (connected && listening) resolve(listening);
      }
    });
    child.once('exit', (code) => reject(new Error(`the bridge exited with ${code}`)));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    prefix,
    pid: child.pid ?? null,
    connectionName: name,
    child,
    commands,
    lines,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
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
    connectionName: '',
    child: null,
    commands: '',
    lines: [],
    stop: async () => {},
  };
}
