import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AMQP_URL, waitFor } from './amqp.js';
import amqplib from 'amqplib';

const run = promisify(execFile);

export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', args, { timeout: 60_000 });
  return stdout;
}

export async function memoryHighWatermark(): Promise<string> {
  const out = await rabbitmqctl('eval', 'vm_memory_monitor:get_vm_memory_high_watermark().');
  return out.trim().split('\n').pop()!.trim();
}

/**
 * Raises RabbitMQ's memory alarm (watermark 0) for the duration of `during`, and always
 * restores the previous watermark and waits for the alarm to clear, even if `during` throws.
 */
export async function withMemoryAlarm<T>(during: (lift: () => Promise<void>) => Promise<T>): Promise<T> {
  const previous = await memoryHighWatermark();
  let lifted = false;
  const lift = async () => {
    if (lifted) return;
    await rabbitmqctl('set_vm_memory_high_watermark', previous);
    await waitFor(async () => !(await alarmActive()), 'the memory alarm to clear', 30_000);
    lifted = true;
  };
  try {
    // Inside the try: a call that times out may still have lowered the watermark.
    await rabbitmqctl('set_vm_memory_high_watermark', '0');
    await waitFor(alarmActive, 'the memory alarm to be raised', 30_000);
    return await during(lift);
  } finally {
    await lift();
  }
}

async function alarmActive(): Promise<boolean> {
  const out = await rabbitmqctl('eval', 'rabbit_alarm:get_alarms().');
  return out.includes('memory');
}

/** Whether a plain AMQP connection can be opened (RabbitMQ up). */
export async function rabbitReachable(): Promise<boolean> {
  try {
    const connection = await amqplib.connect(AMQP_URL);
    await connection.close();
    return true;
  } catch {
    return false;
  }
}

/** Pids of the AMQP connections whose client gave this connection name. */
export async function connectionPids(connectionName: string): Promise<string[]> {
  const out = await rabbitmqctl('list_connections', '--silent', 'pid', 'client_properties');
  return out
    .split('\n')
    .filter((line) => line.includes(`{"connection_name","${connectionName}"}`))
    .map((line) => line.split('\t')[0]!.trim());
}

/** Closes (server side) every AMQP connection with this connection name; returns how many. */
export async function closeConnectionsNamed(connectionName: string, reason = 'closed by test'): Promise<number> {
  const pids = await connectionPids(connectionName);
  for (const pid of pids) await rabbitmqctl('close_connection', pid, reason);
  return pids.length;
}

/** A queue's ready and unacknowledged messages, as RabbitMQ counts them (-1 when there is no such queue). */
export async function queueDepth(queue: string): Promise<{ ready: number; unacknowledged: number }> {
  const out = await rabbitmqctl('list_queues', '--quiet', '--no-table-headers', 'name', 'messages_ready', 'messages_unacknowledged');
  const line = out.split('\n').find((row) => row.trim().split(/\s+/)[0] === queue);
  if (!line) return { ready: -1, unacknowledged: -1 };
  const [, ready, unacknowledged] = line.trim().split(/\s+/);
  return { ready: Number(ready), unacknowledged: Number(unacknowledged) };
}
