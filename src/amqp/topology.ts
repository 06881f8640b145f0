import type { ChannelModel } from 'amqplib';
import type { BridgeConfig } from '../config/schema.js';

/** Declares (asserts) the configured exchanges; returns their names. */
export async function declareExchanges(model: ChannelModel, exchanges: BridgeConfig['amqp']['exchanges']): Promise<string[]> {
  if (exchanges.length === 0) return [];
  const channel = await model.createChannel();
  channel.on('error', () => {}); // a refused declaration rejects assertExchange, which says why
  try {
    for (const exchange of exchanges) {
      await channel.assertExchange(exchange.name, exchange.type, { durable: exchange.durable, autoDelete: exchange.autoDelete });
    }
  } finally {
    await channel.close().catch(() => {});
  }
  return exchanges.map((exchange) => exchange.name);
}
