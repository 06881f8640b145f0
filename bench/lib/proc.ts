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
