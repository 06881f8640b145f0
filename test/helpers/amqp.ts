import { randomBytes } from 'node:crypto';
import amqplib, { type Channel, type ChannelModel, type ConsumeMessage, type Options } from 'amqplib';

export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A name no other test (or earlier run) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Resolves when `predicate` holds, polling; rejects after `timeoutMs` with `what` in the message.
 * Give `what` as a function when it quotes a count: it is then read when the wait times out, not
 * when it starts.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await delay(20);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** An AMQP consumer on an exclusive queue, collecting what arrives. */
export class TestConsumer {
  readonly messages: ConsumeMessage[] = [];

  private constructor(
    readonly connection: ChannelModel,
    readonly channel: Channel,
    readonly queue: string,
  ) {}

  static async create(bindings: Array<{ exchange: string; key: string }>, queueArguments?: Record<string, unknown>): Promise<TestConsumer> {
    const connection = await amqplib.connect(AMQP_URL);
    connection.on('error', () => {});
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    const { queue } = await channel.assertQueue('', { exclusive: true, arguments: queueArguments });
    const consumer = new TestConsumer(connection, channel, queue);
    for (const binding of bindings) await channel.bindQueue(queue, binding.exchange, binding.key);
    await channel.consume(queue, (message) => {
      if (message) consumer.messages.push(message);
    }, { noAck: true });
    return consumer;
  }

  async waitForCount(count: number, timeoutMs = 10_000): Promise<ConsumeMessage[]> {
    await waitFor(() => this.messages.length >= count, () => `${count} AMQP messages (have ${this.messages.length})`, timeoutMs);
    return this.messages;
  }

  async close(): Promise<void> {
    await this.connection.close().catch(() => {});
  }
}

/** Declares exchanges for a test on a short-lived connection. */
export async function withChannel<T>(use: (channel: Channel) => Promise<T>): Promise<T> {
  const connection = await amqplib.connect(AMQP_URL);
  connection.on('error', () => {});
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    return await use(channel);
  } finally {
    await connection.close().catch(() => {});
  }
}

/** Deletes what a test declared; cleanup is best effort, so a missing exchange is not an error. */
export async function deleteExchanges(...names: string[]): Promise<void> {
  await withChannel(async (channel) => {
    for (const name of names) await channel.deleteExchange(name);
  }).catch(() => {});
}

/** Publishes one message as an enterprise system would, waiting for RabbitMQ's confirm (it is routed by then). */
export async function publishConfirmed(exchange: string, routingKey: string, content: Buffer | string, options: Options.Publish = {}): Promise<void> {
  const connection = await amqplib.connect(AMQP_URL);
  try {
    const channel = await connection.createConfirmChannel();
    channel.publish(exchange, routingKey, Buffer.from(content), options);
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
}
