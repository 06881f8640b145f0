import { AMQP_URL } from '../../test/helpers/amqp.js';
import { BenchConsumer } from '../lib/consumer.js';
import { PAYLOAD_BYTES, PUBLISHERS, type BenchContext, type ScenarioResult } from '../lib/context.js';
import { median } from '../lib/stats.js';

/**
 * The best a program could do on this machine: the same consumer fed by 10 amqplib publishers
 * (in the load process) straight to amq.topic, with publisher confirms (500 in flight each, as
 * the MQTT publishers) or without.
 */
export async function ceiling(context: BenchContext, confirm: boolean): Promise<ScenarioResult> {
  const total = context.quick ? 20_000 : 100_000;
  const perPublisher = Math.floor(total / PUBLISHERS);
  const runs: Array<{ rate: number; lost: number; duplicated: number }> = [];
  for (let run = 0; run < context.repeats; run++) {
    const word = `c${confirm ? 1 : 0}${context.tag}${run}`;
    const consumer = await BenchConsumer.start(`ceiling.${word}.#`);
    const published = await context.load.run(
      { kind: 'amqp-publish', amqpUrl: AMQP_URL, publishers: PUBLISHERS, perPublisher, confirm, exchange: 'amq.topic', routingPrefix: `ceiling.${word}`, payloadBytes: PAYLOAD_BYTES, window: 500 },
      'published',
    );
    await consumer.waitFor(published.sent);
    runs.push({ rate: consumer.distinct / ((consumer.lastAt - published.startedAt) / 1000), lost: published.sent - consumer.distinct, duplicated: consumer.duplicated });
    await consumer.stop();
  }
  return {
    scenario: confirm ? 'ceiling-confirmed' : 'ceiling-unconfirmed',
    target: 'amqp',
    messages: perPublisher * PUBLISHERS,
    runs: runs.length,
    msgsPerSecond: Math.round(median(runs.map((run) => run.rate))),
    lost: Math.max(...runs.map((run) => run.lost)),
    duplicated: Math.max(...runs.map((run) => run.duplicated)),
  };
}
