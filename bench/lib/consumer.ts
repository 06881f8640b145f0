import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { AMQP_URL } from '../../test/helpers/amqp.js';
import { DeliveryCount } from './delivery-count.js';
import { latencyHistogram } from './stats.js';
import { benchClockMs } from './clock.js';

/**
 * The AMQP consumer every scenario measures with: binds an exclusive queue to amq.topic for one
 * routing-key prefix, counts distinct and duplicated messages and records, from the intended
 * send time in each payload, how long each took to arrive.
 */
export class BenchConsumer {
  private readonly count = new DeliveryCount();
  readonly latency = latencyHistogram();
  lastAt = 0;

  private constructor(
    private readonly connection: ChannelModel,
    private readonly channel: Channel,
  ) {}

  static async start(bindingKey: string, exchange = 'amq.topic'): Promise<BenchConsumer> {
    const connection = await amqplib.connect(AMQP_URL);
    const channel = await connection.createChannel();
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, bindingKey);
    const consumer = new BenchConsumer(connection, channel);
    await channel.consume(
      queue,
      (message) => {
        if (!message) return;
        const arrivedAt = benchClockMs();
        consumer.count.record(message.content);
        consumer.latency.recordValue(Math.max(1, Math.round((arrivedAt - message.content.readDoubleBE(4)) * 1000)));
        consumer.lastAt = arrivedAt;
      },
      { noAck: true },
    );
    return consumer;
  }

  get distinct(): number {
    return this.count.distinct;
  }

  get duplicated(): number {
    return this.count.duplicated;
  }

  /** Waits until `expected` distinct messages arrived, or nothing arrived for `quietMs`. */
  async waitFor(expected: number, quietMs = 3_000): Promise<void> {
    let last = this.distinct;
    let lastChange = Date.now();
    while (this.distinct < expected) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (this.distinct !== last) {
        last = this.distinct;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > quietMs) {
        return;
      }
    }
  }

  async stop(): Promise<void> {
    await this.channel.close().catch(() => {});
    await this.connection.close().catch(() => {});
  }
}
