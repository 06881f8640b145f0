import amqplib from 'amqplib';
import { AMQP_URL } from '../../test/helpers/amqp.js';
import { PAYLOAD_BYTES, type BenchContext, type ScenarioResult } from '../lib/context.js';
import { payloadFor } from '../lib/payload.js';
import { totalCpuSeconds } from '../lib/proc.js';
import { round } from '../lib/stats.js';
import { benchClockMs } from '../lib/clock.js';

/**
 * An amqplib publisher (confirms, 1,000 in flight) to `subscribers` MQTT subscribers, each on
 * its own topic, through a downlink rule of QoS `qos`: msgs/s delivered, and the bridge's CPU
 * microseconds per message. `persistent`: the subscribers connect with clean session 0 (client
 * ids of this run's own), so that each delivery goes through their sessions' queues.
 */
export async function downlink(context: BenchContext, subscribers: number, qos: 0 | 1, persistent = false): Promise<ScenarioResult> {
  const total = context.quick ? 10_000 : 50_000;
  const clientPrefix = persistent ? `bench-sub-${context.tag}` : 'bench-sub';
  await context.load.run({ kind: 'subscribe', url: context.target.url, subscribers, qos, topicPrefix: `${context.target.prefix}/down${qos}`, clientPrefix, clean: !persistent }, 'subscribed');
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  const bridgeCpu = totalCpuSeconds(context.target.pids);
  const started = benchClockMs();
  for (let id = 0; id < total; id++) {
    channel.publish(context.target.commands, `down${qos}.d${id % subscribers}`, payloadFor(id, benchClockMs(), PAYLOAD_BYTES));
    if (id % 1_000 === 999) await channel.waitForConfirms();
  }
  await channel.waitForConfirms();
  await connection.close();
  const delivered = await context.load.run({ kind: 'await', expected: total, timeoutMs: 120_000 }, 'delivered');
  const bridgeUs = ((totalCpuSeconds(context.target.pids) - bridgeCpu) * 1e6) / Math.max(1, delivered.distinct);
  return {
    scenario: `downlink-qos${qos}-${subscribers}${persistent ? '-persistent' : ''}`,
    target: context.targetName,
    subscribers,
    messages: total,
    msgsPerSecond: Math.round(delivered.distinct / ((delivered.lastAt - started) / 1000)),
    bridgeCpuUsPerMsg: context.target.pids.length > 0 ? round(bridgeUs) : null,
    lost: total - delivered.distinct,
    duplicated: delivered.duplicated,
  };
}
