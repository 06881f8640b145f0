import { BenchConsumer } from '../lib/consumer.js';
import { PAYLOAD_BYTES, PUBLISHERS, type BenchContext, type ScenarioResult } from '../lib/context.js';
import { cpuSeconds, rabbitPid, totalCpuSeconds } from '../lib/proc.js';
import { median, round } from '../lib/stats.js';

/**
 * 10 MQTT publishers of 64-byte payloads, as fast as the target acknowledges (500 in flight per
 * client): msgs/s from the first publish to the last AMQP delivery, and the CPU microseconds per
 * message spent by the bridge and by RabbitMQ. The median of `repeats` runs; `rabbitResourceAlarms`
 * counts RabbitMQ's resource alarms that blocked the bridge meanwhile (their runs are not comparable).
 */
export async function uplink(context: BenchContext, qos: 0 | 1 | 2): Promise<ScenarioResult> {
  const total = context.quick ? 20_000 : 100_000;
  const perClient = Math.floor(total / PUBLISHERS);
  const runs: Array<{ rate: number; lost: number; duplicated: number; bridgeUs: number; rabbitUs: number; alarms: number }> = [];
  const rabbit = rabbitPid();
  for (let run = 0; run < context.repeats; run++) {
    const word = `u${qos}${context.tag}${run}`;
    const consumer = await BenchConsumer.start(`${context.target.prefix}.${word}.#`);
    const bridgeCpu = totalCpuSeconds(context.target.pids);
    const rabbitCpu = rabbit ? cpuSeconds(rabbit) : 0;
    const alarmsBefore = resourceAlarms(context);
    const published = await context.load.run(
      { kind: 'publish', url: context.target.url, clients: PUBLISHERS, perClient, qos, topicPrefix: `${context.target.prefix}/${word}`, payloadBytes: PAYLOAD_BYTES, window: 500 },
      'published',
    );
    // 10 s without a delivery before giving up: a resource alarm of RabbitMQ (other programs share it) can stall deliveries for seconds.
    await consumer.waitFor(published.sent, 10_000);
    const seconds = (consumer.lastAt - published.startedAt) / 1000;
    const delivered = consumer.distinct;
    runs.push({
      rate: delivered / seconds,
      lost: published.sent - delivered,
      duplicated: consumer.duplicated,
      bridgeUs: ((totalCpuSeconds(context.target.pids) - bridgeCpu) * 1e6) / delivered,
      rabbitUs: rabbit ? ((cpuSeconds(rabbit) - rabbitCpu) * 1e6) / delivered : 0,
      alarms: resourceAlarms(context) - alarmsBefore,
    });
    await consumer.stop();
  }
  return {
    scenario: `uplink-qos${qos}`,
    target: context.targetName,
    messages: perClient * PUBLISHERS,
    runs: runs.length,
    msgsPerSecond: Math.round(median(runs.map((run) => run.rate))),
    bridgeCpuUsPerMsg: context.target.pids.length > 0 ? round(median(runs.map((run) => run.bridgeUs))) : null,
    rabbitCpuUsPerMsg: rabbit ? round(median(runs.map((run) => run.rabbitUs))) : null,
    lost: Math.max(...runs.map((run) => run.lost)),
    duplicated: Math.max(...runs.map((run) => run.duplicated)),
    rabbitResourceAlarms: runs.reduce((sum, run) => sum + run.alarms, 0),
  };
}

/** How many times RabbitMQ has blocked the bridge's publishing so far (a memory or disk alarm), from its log. */
function resourceAlarms(context: BenchContext): number {
  return context.target.lines.filter((line) => line.msg === 'RabbitMQ blocked publishing (resource alarm)').length;
}
