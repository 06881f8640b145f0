import { startBridge } from '../lib/bridge.js';
import { BenchConsumer } from '../lib/consumer.js';
import { PAYLOAD_BYTES, PUBLISHERS, type BenchContext, type ScenarioResult } from '../lib/context.js';
import { memoryKiB } from '../lib/proc.js';
import { round } from '../lib/stats.js';
import { withMemoryAlarm } from '../../test/helpers/rabbitmqctl.js';
import { benchClockMs } from '../lib/clock.js';

/**
 * The flow-control scenario: 1,000,000 QoS 0 messages (100,000 with --quick) offered by 10
 * publishers while a RabbitMQ memory alarm blocks publishing, then the alarm is lifted. A bridge
 * of its own, so its peak RSS (VmHWM) and its shutdown summary belong to this scenario only.
 */
export async function overload(context: BenchContext): Promise<ScenarioResult> {
  const total = context.quick ? 100_000 : 1_000_000;
  const bridge = await startBridge(`bench-overload-${context.tag}`);
  const rssAtStart = memoryKiB(bridge.pid!, 'VmRSS');
  const consumer = await BenchConsumer.start(`${bridge.prefix}.overload.#`);
  let offeredSeconds = 0;
  let drainSeconds = 0;
  let sent = 0;
  await withMemoryAlarm(async (lift) => {
    const published = await context.load.run(
      { kind: 'publish', url: bridge.url, clients: PUBLISHERS, perClient: Math.floor(total / PUBLISHERS), qos: 0, topicPrefix: `${bridge.prefix}/overload`, payloadBytes: PAYLOAD_BYTES, window: 1_000 },
      'published',
    );
    sent = published.sent;
    offeredSeconds = published.ms / 1000;
    await new Promise((resolve) => setTimeout(resolve, 500));
    const lifted = benchClockMs();
    await lift();
    await consumer.waitFor(sent, 2_000);
    drainSeconds = Math.max(0, consumer.lastAt - lifted) / 1000;
  });
  const peakRss = memoryKiB(bridge.pid!, 'VmHWM');
  await consumer.stop();
  await bridge.stop();
  const stopped = bridge.lines.find((line) => line.msg === 'stopped') as { totals?: { uplink_dropped?: Record<string, number> } } | undefined;
  const dropped = stopped?.totals?.uplink_dropped?.qos0_overflow ?? 0;
  return {
    scenario: 'overload',
    target: 'bridge',
    offered: sent,
    offeredSeconds: round(offeredSeconds),
    arrived: consumer.distinct,
    droppedCounted: dropped,
    droppedEqualsNotArrived: dropped === sent - consumer.distinct,
    rssAtStartMiB: round(rssAtStart / 1024),
    peakRssMiB: round(peakRss / 1024),
    drainSecondsAfterAlarm: round(drainSeconds, 2),
  };
}
