import type { Channel, ChannelModel } from 'amqplib';
import { classifyAmqpError, type ClassifiedAmqpError } from './amqp-errors.js';
import type { UplinkExchange } from './backend.js';
import type { DownlinkSubscription } from './downlink-consumers.js';
import { downlinkRefusal, type Refusal } from './refusals.js';
import { declareExchange, ownQueueOptions, quietChannel, type ExchangeSettings } from './topology.js';

/** What a configuration asks of RabbitMQ. */
export interface BrokerTopology {
  readonly exchanges: readonly ExchangeSettings[];
  readonly uplinkExchanges: readonly UplinkExchange[];
  readonly downlink: ReadonlyArray<Pick<DownlinkSubscription, 'rule' | 'queue' | 'binding' | 'configPath'>>;
}

/**
 * What RabbitMQ would refuse of a configuration, found without changing anything on it (for
 * `validate --amqp`). Existence is checked passively. AMQP 0-9-1 has no passive way to read an
 * exchange's or queue's arguments, so one that exists is declared again as the bridge would
 * declare it: RabbitMQ changes nothing when it is equivalent, and refuses (406) when it is not.
 * Nothing missing is declared: what the bridge would create (its exchanges and its own queues)
 * is not a problem, what it would not (a rule's exchange, a rule's `queue`) is reported as a 404.
 * The one change it can make: an exchange or queue deleted between the check and the declare is
 * created, as the configuration says (what `run` would do).
 */
export async function checkBrokerTopology(model: ChannelModel, topology: BrokerTopology): Promise<Refusal[]> {
  const refusals: Refusal[] = [];
  const declared = new Set(topology.exchanges.map(({ name }) => name));
  const exists = existence(model);

  for (const [index, exchange] of topology.exchanges.entries()) {
    if ((await exists('exchange', exchange.name)) !== true) continue; // the bridge declares it
    const error = await attempt(model, (channel) => declareExchange(channel, exchange));
    if (error) refusals.push({ resource: { kind: 'exchange', name: exchange.name }, error, operation: 'declare', entry: `amqp.exchanges[${index}]`, held: heldBy(topology, exchange.name) });
  }
  const reported = new Set<string>();
  for (const [index, { exchange }] of topology.uplinkExchanges.entries()) {
    if (exchange === null || declared.has(exchange) || reported.has(exchange)) continue;
    const error = await exists('exchange', exchange);
    if (error === true) continue;
    reported.add(exchange);
    refusals.push({ resource: { kind: 'exchange', name: exchange }, error, operation: 'check', entry: `uplink[${index}].exchange`, held: heldBy(topology, exchange) });
  }
  for (const subscription of topology.downlink) {
    const { binding, queue } = subscription;
    if (binding && !declared.has(binding.exchange)) {
      const error = await exists('exchange', binding.exchange);
      if (error !== true) refusals.push(downlinkRefusal(subscription, error));
    }
    const queueExists = await exists('queue', queue);
    if (queueExists !== true) {
      if (!binding) refusals.push(downlinkRefusal(subscription, queueExists)); // a rule's `queue` is not declared by the bridge
      continue;
    }
    const error = binding ? await attempt(model, (channel) => channel.assertQueue(queue, ownQueueOptions(binding.deadLetterExchange))) : null;
    if (error) refusals.push(downlinkRefusal(subscription, error));
  }
  return refusals;
}

/** Whether an exchange or queue exists: true, or RabbitMQ's refusal (404 when it does not exist). */
function existence(model: ChannelModel) {
  return async (kind: 'exchange' | 'queue', name: string): Promise<true | ClassifiedAmqpError> =>
    (await attempt(model, (channel) => (kind === 'exchange' ? channel.checkExchange(name) : channel.checkQueue(name)))) ?? true;
}

/** Runs one operation on a channel of its own (a refusal closes it): null, or RabbitMQ's refusal. Other errors are thrown. */
async function attempt(model: ChannelModel, operation: (channel: Channel) => Promise<unknown>): Promise<ClassifiedAmqpError | null> {
  const channel = await quietChannel(model);
  try {
    await operation(channel);
    return null;
  } catch (error) {
    const classified = classifyAmqpError(error);
    if (classified.kind !== 'configuration') throw error;
    return classified;
  } finally {
    await channel.close().catch(() => {});
  }
}

function heldBy(topology: BrokerTopology, exchange: string): string[] {
  return topology.uplinkExchanges.filter((uplink) => uplink.exchange === exchange).map(({ rule }) => `uplink rule ${rule}`);
}
