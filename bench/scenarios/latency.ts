import { BenchConsumer } from '../lib/consumer.js';
import { PAYLOAD_BYTES, PUBLISHERS, type BenchContext, type ScenarioResult } from '../lib/context.js';
import { percentilesMs } from '../lib/stats.js';

export const LATENCY_RATES = [500, 2_000, 8_000];

/**
 * QoS 1 at a fixed offered rate for 10 s (2 s with --quick), from 10 publishers: the
 * publish-to-AMQP-delivery and PUBACK latencies, p50/p95/p99/max, counted from each message's
 * intended send time.
 */
export async function latency(context: BenchContext, rate: number): Promise<ScenarioResult> {
  const seconds = context.quick ? 2 : 10;
  const word = `l${rate}${context.tag}`;
  const consumer = await BenchConsumer.start(`${context.target.prefix}.${word}.#`);
  const paced = await context.load.run(
    { kind: 'paced', url: context.target.url, clients: PUBLISHERS, rate, seconds, qos: 1, topicPrefix: `${context.target.prefix}/${word}`, payloadBytes: PAYLOAD_BYTES },
    'paced',
  );
  await consumer.waitFor(paced.sent);
  const delivery = percentilesMs(consumer.latency);
  await consumer.stop();
  return {
    scenario: `latency-${rate}`,
    target: context.targetName,
    offeredRate: rate,
    seconds,
    messages: paced.sent,
    deliveryMs: { p50: delivery.p50, p95: delivery.p95, p99: delivery.p99, max: delivery.max },
    pubackMs: { p50: paced.puback.p50, p95: paced.puback.p95, p99: paced.puback.p99, max: paced.puback.max },
    lost: paced.sent - consumer.distinct,
    duplicated: consumer.duplicated,
  };
}
