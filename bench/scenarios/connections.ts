import { type BenchContext, type ScenarioResult } from '../lib/context.js';
import { cpuSeconds, memoryKiB } from '../lib/proc.js';
import { round } from '../lib/stats.js';

/** Source addresses for many connections to one port (each address has its own ephemeral ports). */
const SOURCES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'];
export const IDLE_KEEPALIVE_SECONDS = 20;

/**
 * 10,000 idle MQTT connections (1,000 with --quick) that send PINGREQ every half keep-alive:
 * KiB of bridge RSS per connection, connections/s, and the CPU the idle connections cost.
 */
export async function connections(context: BenchContext): Promise<ScenarioResult> {
  const count = context.quick ? 1_000 : 10_000;
  const pid = context.target.pid!;
  await new Promise((resolve) => setTimeout(resolve, 500));
  const rssBefore = memoryKiB(pid, 'VmRSS');
  const opened = await context.load.run({ kind: 'idle', url: context.target.url, connections: count, keepaliveSeconds: IDLE_KEEPALIVE_SECONDS, sources: SOURCES }, 'idle');
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const rssAfter = memoryKiB(pid, 'VmRSS');
  const window = context.quick ? 3 : IDLE_KEEPALIVE_SECONDS;
  const cpuBefore = cpuSeconds(pid);
  await new Promise((resolve) => setTimeout(resolve, window * 1000));
  const idleCpu = (cpuSeconds(pid) - cpuBefore) / window;
  await context.load.run({ kind: 'close' }, 'closed');
  return {
    scenario: 'connections',
    target: context.targetName,
    connections: opened.connected,
    failed: opened.failed,
    connectionsPerSecond: Math.round(opened.connected / opened.seconds),
    kibPerConnection: round((rssAfter - rssBefore) / Math.max(1, opened.connected)),
    bridgeRssMiB: round(rssAfter / 1024),
    idleCpuPercent: round(idleCpu * 100, 2),
    keepaliveSeconds: IDLE_KEEPALIVE_SECONDS,
  };
}
