import type { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Aedes, Client, SubscribePacket } from 'aedes';
import { BridgeError } from '../errors.js';

/**
 * The one place that reaches past aedes' public API. aedes has no public way to see a packet's
 * bytes before it buffers them, or a parsed packet before it handles it, the will of a client
 * still authenticating, a client's granted subscriptions, the connected clients or its
 * persistence, nor to answer a SUBSCRIBE itself; these accessors do, and
 * `checkAedesInternals` verifies at start that the aedes installed still has each of them, so a
 * changed aedes fails the start with a clear error instead of misbehaving under load.
 */

/** The MQTT parser aedes feeds a client's bytes to. */
export interface ClientParser {
  parse(chunk: Buffer): number;
}

/** The MQTT parser as an emitter: aedes handles each packet it emits, and closes the client on its errors. */
type EmittingParser = ClientParser & Pick<EventEmitter, 'listeners' | 'removeAllListeners' | 'on' | 'listenerCount'>;

/** What sees a client's packets before aedes does. */
export interface PacketScreen {
  /** Whether aedes may handle this parsed packet; one it may not is dropped. */
  pass(packet: { readonly cmd: string }): boolean;
  /** The parser found a malformed packet (aedes closes the connection). */
  malformed(error: Error): void;
}

/** A will as aedes holds it: the CONNECT's will fields. */
export interface PendingWill {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
}

/** A granted subscription as aedes keeps it on the client. */
export interface HeldSubscription {
  readonly qos?: number;
}

interface ClientInternals {
  _parser: EmittingParser;
  _will: PendingWill | null | undefined;
  will: PendingWill | null;
  subscriptions: Record<string, HeldSubscription>;
  duplicates: Record<string, number>;
  pause(): void;
}

interface BrokerInternals {
  clients: Record<string, Client>;
  persistence: unknown;
}

const internals = (client: Client) => client as unknown as ClientInternals;

export function clientParser(client: Client): ClientParser {
  return internals(client)._parser;
}

/**
 * Puts `screen` in front of aedes for every packet this client sends: aedes' own handler of the
 * parser's packets runs only for those the screen passes.
 */
export function screenPackets(client: Client, screen: PacketScreen): void {
  const parser = internals(client)._parser;
  const handlers = parser.listeners('packet') as Array<(this: EmittingParser, packet: { readonly cmd: string }) => void>;
  parser.removeAllListeners('packet');
  parser.on('packet', function (this: EmittingParser, packet: { readonly cmd: string }) {
    if (!screen.pass(packet)) return;
    for (const handler of handlers) handler.call(this, packet);
  });
  parser.on('error', (error: Error) => screen.malformed(error));
}

/**
 * Lets aedes handle a SUBSCRIBE without answering it: aedes writes a SUBACK only for a SUBSCRIBE
 * with a packet identifier. Its `subscribe` event still reports what it granted.
 */
export function withholdSuback(packet: SubscribePacket): void {
  delete (packet as { messageId?: number }).messageId;
}

/** The will of a CONNECT being authenticated (aedes stores it on the client only after `authenticate`). */
export function pendingWill(client: Client): PendingWill | null {
  return internals(client)._will ?? null;
}

/** Forgets a connected client's will, so that closing it publishes none. */
export function dropWill(client: Client): void {
  internals(client).will = null;
}

/**
 * Turns off aedes' duplicate check for a client, which drops every message whose broker counter is
 * below the highest this client has had from that broker. Publishes overtake each other on their
 * way to the emitter (one with a persistent subscriber waits for its store to queue it, one without
 * does not), so that check dropped live QoS 1 messages; authorize-forward.ts checks for duplicates
 * exactly instead.
 */
export function disableCounterDedupe(client: Client): void {
  internals(client).duplicates = new Proxy(Object.create(null) as Record<string, number>, {
    get: () => undefined,
    set: () => true,
  });
}

/** The filters a client holds now, with their granted QoS. */
export function heldSubscriptions(client: Client): Readonly<Record<string, HeldSubscription>> {
  return internals(client).subscriptions;
}

/** Stops aedes reading from a client (it resumes only when the client is handed back to aedes' flow). */
export function pauseClient(client: Client): void {
  internals(client).pause();
}

/** The clients connected to this broker now. */
export function connectedClients(broker: Aedes): Client[] {
  return Object.values((broker as unknown as BrokerInternals).clients);
}

/** The connected client with this id, if any. */
export function connectedClient(broker: Aedes, clientId: string): Client | undefined {
  return (broker as unknown as BrokerInternals).clients[clientId];
}

/** The persistence aedes was given (it sets it up in `listen`). */
export function brokerPersistence<T>(broker: Aedes): T {
  return (broker as unknown as BrokerInternals).persistence as T;
}

/**
 * Checks that this aedes has every internal the bridge relies on, on a throwaway client that
 * never connects; throws BRIDGE_ERR_DEPENDENCY naming the aedes version otherwise.
 */
export function checkAedesInternals(broker: Aedes): void {
  const missing: string[] = [];
  const brokerFields = broker as unknown as Partial<BrokerInternals>;
  if (typeof brokerFields.clients !== 'object' || brokerFields.clients === null) missing.push('broker.clients');
  if (typeof brokerFields.persistence !== 'object' || brokerFields.persistence === null) missing.push('broker.persistence');
  const probe = broker.handle(new PassThrough(), undefined) as unknown as Partial<ClientInternals> & Client;
  try {
    if (typeof probe._parser?.parse !== 'function') missing.push('client._parser.parse');
    if (typeof probe._parser?.listenerCount !== 'function' || probe._parser.listenerCount('packet') !== 1) missing.push("client._parser's one 'packet' handler");
    if (!('_will' in probe)) missing.push('client._will');
    if (!('will' in probe)) missing.push('client.will');
    if (typeof probe.subscriptions !== 'object' || probe.subscriptions === null) missing.push('client.subscriptions');
    if (typeof probe.duplicates !== 'object' || probe.duplicates === null) missing.push('client.duplicates');
    if (typeof probe.pause !== 'function') missing.push('client.pause');
  } finally {
    probe.close();
  }
  if (missing.length > 0) {
    throw new BridgeError(
      'BRIDGE_ERR_DEPENDENCY',
      `aedes ${(broker as unknown as { version?: string }).version ?? '(unknown version)'} lacks what the bridge relies on (${missing.join(', ')}); install the aedes version package.json names`,
    );
  }
}
