import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { BRIDGE_NODE_FLAGS } from '../../src/cli/node-flags.js';
import { waitFor } from './amqp.js';

export interface BridgeProcess {
  child: ChildProcess;
  /** The JSON log lines it wrote, parsed. */
  lines: Array<Record<string, unknown>>;
  exit: Promise<number | null>;
}

export interface BridgeProcessOptions {
  /** Run the build (dist/cli/bin.js) instead of the sources through tsx. */
  fromBuild?: boolean;
  /** Extra node flags, such as `--cpu-prof`. */
  nodeFlags?: string[];
}

/** Runs `mqtt-amqp-bridge run ARGS` as its own process, as a user would (with the node flags it ships with; `nodeFlags` come after them). */
export function runBridgeProcess(args: string[], env: Record<string, string> = {}, { fromBuild = false, nodeFlags = [] }: BridgeProcessOptions = {}): BridgeProcess {
  const entry = fromBuild ? ['dist/cli/bin.js'] : ['--import', 'tsx', 'src/cli/bin.ts'];
  const child = spawn(process.execPath, [...BRIDGE_NODE_FLAGS, ...nodeFlags, ...entry, 'run', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let newline;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      lines.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  child.stderr.on('data', (chunk: Buffer) => lines.push({ stderr: chunk.toString('utf8') }));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, lines, exit };
}

export async function waitForAmqp(bridge: BridgeProcess, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    () => {
      if (bridge.lines.some((line) => line.msg === 'AMQP connected; exchanges declared' || line.msg === 'AMQP 1.0 connected')) return true;
      const { exitCode, signalCode } = bridge.child;
      if (exitCode !== null || signalCode !== null) throw new Error(`the bridge exited (${exitCode ?? signalCode}) before connecting to RabbitMQ: ${JSON.stringify(bridge.lines.slice(-5))}`);
      return false;
    },
    'the bridge to connect to RabbitMQ',
    timeoutMs,
  );
}

/**
 * A TCP port on 127.0.0.1 that is free now and that no `listen(0)` can be given meanwhile (for a
 * bridge that must come back on the same port, or a broker that is not there yet): it is taken
 * from below the kernel's ephemeral range, which is where port 0 is served from. A port that
 * `listen(0)` gave and that was closed again may be handed to the next `listen(0)`: once the
 * bridge's own HTTP endpoint got the port its AMQP URL named, and the bridge retried against it
 * for ever.
 */
export async function freePort(): Promise<number> {
  const ephemeralStart = ephemeralPortStart();
  const low = Math.max(1024, ephemeralStart - 12_000);
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (ephemeralStart - low));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free TCP port between ${low} and ${ephemeralStart}`);
}

/** The first port of the kernel's ephemeral range (Linux; 32768 elsewhere, Linux's default). */
function ephemeralPortStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 2048 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
