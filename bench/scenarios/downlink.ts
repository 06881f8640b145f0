import amqplib from 'amqplib';
import { AMQP_URL } from '../../test/helpers/amqp.js';
import { PAYLOAD_BYTES, type BenchContext, type ScenarioResult } from '../lib/context.js';
import { payloadFor } from '../lib/payload.js';

/**
 * An amqplib publisher (confirms, 1,000 in flight) to `subscribers` MQTT subscribers, each on
 * its own topic, through a downlink rule of QoS `qos`: msgs/s delivered.
 */
export async function downlink(context: BenchContext, subscribers: number, qos: 0 | 1): Promise<ScenarioResult> {
  const total = context.quick ? 10_000 : 50_000;
  await context.load.run({ kind: 'subscribe', url: context.target.url, subscribers, qos, topicPrefix: `${context.target.prefix}/down${qos}` }, 'subscribed');
  const connection = await amqplib.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  const started = performance.timeOrigin + performance.now();
  for (let id = 0; id < total; id++) {
    channel.publish(context.target.commands, `down${qos}.d${id % subscribers}`, payloadFor(id, performance.timeOrigin + performance.now(), PAYLOAD_BYTES));
    if (id % 1_000 === 999) await channel.waitForConfirms();
  }
  await channel.waitForConfirms();
  await connection.close();
  const delivered = await context.load.run({ kind: 'await', expected: total, timeoutMs: 60_000 }, 'delivered');
  return {
    scenario: `downlink-qos${qos}-${subscribers}`,
    target: context.targetName,
    subscribers,
    messages: total,
    msgsPerSecond: Math.round(delivered.distinct / ((delivered.lastAt - started) / 1000)),
    lost: total - delivered.distinct,
    duplicated: delivered.duplicated,
  };
}
