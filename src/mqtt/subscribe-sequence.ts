import type { Aedes, Client, SubscribePacket, Subscription } from 'aedes';
import type { Writable } from 'node:stream';
import { withholdSuback } from './aedes-internals.js';
import { SUBACK_FAILURE } from '../protocol/mqtt.js';
import { encodeSuback } from './packet-encoding.js';

/** One filter of a SUBSCRIBE, with the QoS it asks for. */
export interface RequestedFilter {
  readonly topic: string;
  readonly qos: number;
}

export function hasRepeatedFilters(subscriptions: readonly RequestedFilter[]): boolean {
  if (subscriptions.length < 2) return false;
  const seen = new Set<string>();
  for (const { topic } of subscriptions) {
    if (seen.has(topic)) return true;
    seen.add(topic);
  }
  return false;
}

/**
 * The SUBACK return codes of a SUBSCRIBE that repeats a filter, one per filter in order
 * [MQTT-3.9.3-1], as if it were a sequence of SUBSCRIBEs [MQTT-3.8.4-4]. aedes handles each
 * distinct filter once, with the QoS of its last occurrence (what such a sequence leaves
 * held), and `granted` is its answer by filter. A refused filter is refused wherever it occurs;
 * an earlier occurrence is granted the QoS it asked for, capped by what the last was granted
 * if that was lowered.
 */
export function sequenceReturnCodes(requested: readonly RequestedFilter[], granted: ReadonlyMap<string, number>): number[] {
  const lastAsked = new Map<string, number>();
  for (const { topic, qos } of requested) lastAsked.set(topic, qos);
  return requested.map(({ topic, qos }) => {
    const code = granted.get(topic) ?? SUBACK_FAILURE;
    if (code === SUBACK_FAILURE) return SUBACK_FAILURE;
    return code < lastAsked.get(topic)! ? Math.min(qos, code) : qos;
  });
}

interface PendingSubscribe {
  readonly packet: SubscribePacket;
  readonly messageId: number;
  readonly requested: readonly RequestedFilter[];
  readonly connection: Writable;
}

/**
 * aedes merges the repeated filters of a SUBSCRIBE and answers with one return code per
 * distinct filter. For such a SUBSCRIBE the bridge lets aedes grant and hold the filters but
 * withholds aedes' SUBACK, and writes one itself, with a code per filter, when aedes reports
 * what it granted (its `subscribe` event, before it sends any retained message).
 */
export class SubscribeSequences {
  private readonly pending = new WeakMap<Client, PendingSubscribe[]>();

  constructor(broker: Aedes) {
    broker.on('subscribe', (subscriptions, client) => this.granted(subscriptions, client));
  }

  /** Called with each SUBSCRIBE before aedes handles it. */
  prepare(client: Client, packet: SubscribePacket, connection: Writable): void {
    if (packet.messageId === undefined || !hasRepeatedFilters(packet.subscriptions)) return;
    const entry: PendingSubscribe = {
      packet,
      messageId: packet.messageId,
      // Copied: aedes overwrites each kept subscription's qos with what it granted.
      requested: packet.subscriptions.map(({ topic, qos }) => ({ topic, qos })),
      connection,
    };
    withholdSuback(packet);
    const list = this.pending.get(client);
    if (list) list.push(entry);
    else this.pending.set(client, [entry]);
  }

  private granted(subscriptions: readonly Subscription[], client: Client): void {
    const list = this.pending.get(client);
    const index = list?.findIndex((entry) => entry.packet.subscriptions === subscriptions) ?? -1;
    if (index === -1) return;
    const entry = list!.splice(index, 1)[0]!;
    if (client.closed) return;
    const granted = new Map(subscriptions.map(({ topic, qos }) => [topic, qos as number]));
    entry.connection.write(encodeSuback(entry.messageId, sequenceReturnCodes(entry.requested, granted)));
  }
}
