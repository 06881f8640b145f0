import type { Channel, ChannelModel, Options } from 'amqplib';
import type { BridgeConfig } from '../config/schema.js';
import { classifyAmqpError, type ClassifiedAmqpError } from './amqp-errors.js';

export type ExchangeSettings = BridgeConfig['amqp']['exchanges'][number];

export interface DeclaredExchanges {
  /** The names RabbitMQ accepted. */
  readonly declared: string[];
  /** Those RabbitMQ refused (another type or other arguments, access refused), each with its answer. */
  readonly refused: Array<readonly [string, ClassifiedAmqpError]>;
}

/**
 * Declares (asserts) the exchanges one by one, so that one RabbitMQ refuses does not keep the
 * others from being declared. A refused declare closes its channel: the next one goes on a new
 * channel. Any other failure (the connection went) is thrown.
 */
export async function declareExchanges(model: ChannelModel, exchanges: readonly ExchangeSettings[]): Promise<DeclaredExchanges> {
  const outcome: DeclaredExchanges = { declared: [], refused: [] };
  let channel: Channel | null = null;
  try {
    for (const exchange of exchanges) {
      channel ??= await quietChannel(model);
      try {
        await declareExchange(channel, exchange);
        outcome.declared.push(exchange.name);
      } catch (error) {
        const classified = classifyAmqpError(error);
        if (classified.kind !== 'configuration') throw error;
        outcome.refused.push([exchange.name, classified]);
        channel = null; // RabbitMQ closed it
      }
    }
  } finally {
    await channel?.close().catch(() => {});
  }
  return outcome;
}

/** Declares one exchange as the configuration says; RabbitMQ changes nothing when it exists so already. */
export async function declareExchange(channel: Channel, exchange: ExchangeSettings): Promise<void> {
  await channel.assertExchange(exchange.name, exchange.type, { durable: exchange.durable, autoDelete: exchange.autoDelete });
}

/** How the bridge declares the queue of its own for a downlink `exchange` rule. */
export function ownQueueOptions(deadLetterExchange: string | undefined): Options.AssertQueue {
  return { durable: true, arguments: deadLetterExchange === undefined ? {} : { 'x-dead-letter-exchange': deadLetterExchange } };
}

/** A channel whose error events are left to the operation that failed (its promise rejects with the same error). */
export async function quietChannel(model: ChannelModel): Promise<Channel> {
  const channel = await model.createChannel();
  channel.on('error', () => {}); // a refused declaration rejects assertExchange, which says why
  return channel;
}
