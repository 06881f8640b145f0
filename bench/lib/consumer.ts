import amqplib, { type Channel, type ChannelModel } from 'amqplib';
import { AMQP_URL } from './bridge.js';
import { latencyHistogram } from './stats.js';

/**
 * The AMQP consumer every scenario measures with: binds an exclusive queue to amq.topic for one
 * routing-key prefix, counts distinct and duplicated messages and records, from the intended
 * send time in each payload, how long each took to arrive.
 */
export class BenchConsumer {
  private readonly seen = new Map<number, number>();
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
        const arrivedAt = performance.timeOrigin + performance.now();
        const id = message.content.readUInt32BE(0);
        consumer.seen.set(id, (consumer.seen.get(id) ?? 0) + 1);
        consumer.latency.recordValue(Math.max(1, Math.round((arrivedAt - message.content.readDoubleBE(4)) * 1000)));
        consumer.lastAt = arrivedAt;
      },
      { noAck: true },
    );
    return consumer;
  }

  get distinct(): number {
    return this.seen.size;
  }

  get duplicated(): number {
    let duplicated = 0;
    for (const count of this.seen.values()) duplicated += count - 1;
    return duplicated;
  }

  /** Waits until `expected` distinct messages arrived, or nothing arrived for `quietMs`. */
  async waitFor(expected: number, quietMs = 3_000): Promise<void> {
    let last = this.seen.size;
    let lastChange = Date.now();
    while (this.seen.size < expected) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (this.seen.size !== last) {
        last = this.seen.size;
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
