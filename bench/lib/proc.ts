import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
}

/** CPU seconds used so far by all of `pids` (a bridge with its workers); 0 for none. */
export function totalCpuSeconds(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
}

/** Busy and total CPU time of the whole machine so far, in clock ticks, from /proc/stat (all cores). */
export function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = fields[3]! + (fields[4] ?? 0); // idle, iowait
  return { busy: total - idle, total };
}

/** Resident memory of a process in KiB: now (VmRSS) or its peak (VmHWM). */
export function memoryKiB(pid: number, which: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${which}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
}

/** The pid of RabbitMQ's Erlang VM, if it runs here. */
export function rabbitPid(): number | null {
  try {
    const out = execFileSync('pgrep', ['-f', 'beam.smp.*rabbit']).toString().trim().split('\n')[0];
    return out ? Number(out) : null;
  } catch {
    return null;
  }
}
