import type { PublishError } from './errors.js';
import type { Destination } from './mapping/destination.js';
import type { DownlinkRuleResolver } from './mapping/downlink.js';
import type { HeaderValue, UplinkProperties } from './mapping/uplink.js';

/**
 * The small interfaces through which the MQTT side and the message-broker side meet in
 * bridge.ts. amqp/ implements them for AMQP 0-9-1, amqp10/ for AMQP 1.0; mqtt/, mapping/ and the
 * pipelines do not know which one runs. A message's destination is an exchange and a routing key
 * (0-9-1) or an address and a subject (1.0): see mapping/destination.ts.
 */

export type { Destination } from './mapping/destination.js';

/** One message to publish to the broker. */
export type OutboundMessage = Destination & {
  readonly content: Buffer;
  readonly headers: Readonly<Record<string, HeaderValue>>;
  readonly properties: Readonly<UplinkProperties>;
  readonly messageId: string;
  /** Seconds since the epoch, as AMQP carries it. */
  readonly timestamp: number;
  /** When the device's publish arrived (ms since the epoch): the publish timeout counts from here. */
  readonly receivedAt: number;
  /**
   * QoS 0: nobody waits for a confirm, so when the broker refuses the message's destination the
   * publish fails at once (it is dropped and counted) instead of waiting there until its timeout.
   */
  readonly atMostOnce: boolean;
};

/** Called once per publish: null when the broker confirmed it, else why it failed. */
export type PublishCallback = (error: PublishError | null) => void;

export interface MessagePublisher {
  /** Publishes with a broker confirm; `done` runs once, after the confirm, a nack or the timeout. */
  publish(message: OutboundMessage, done: PublishCallback): void;
  /** Messages accepted but not yet settled (waiting or unconfirmed). */
  readonly pendingMessages: number;
  /** Payload bytes of those messages. */
  readonly pendingBytes: number;
  /** Stops accepting; waits up to `timeoutMs` for pending publishes to settle, then fails the rest. */
  close(timeoutMs: number): Promise<void>;
}

export type BrokerState = 'connecting' | 'connected' | 'disconnected' | 'closed';

/**
 * An exchange or queue the broker refuses (it exists with other arguments, is missing, or the
 * bridge may not use it): what needs it waits, everything else flows.
 */
export interface BrokerRefusal {
  readonly kind: 'exchange' | 'queue' | 'address';
  readonly name: string;
  /** One line for /readyz: what, the broker's answer, the configuration entry, what waits. */
  readonly summary: string;
}

/** One message the broker delivered to a downlink consumer. */
export type InboundDelivery = Destination & {
  readonly content: Buffer;
  /** AMQP 0-9-1 headers, or AMQP 1.0 application-properties. */
  readonly headers: Readonly<Record<string, unknown>> | undefined;
};

/**
 * What becomes of a delivery: `ack` once the MQTT side has it (AMQP 1.0: accepted); `dead-letter`
 * (rejected without requeue, so a dead-letter exchange on the queue catches it; AMQP 1.0: rejected
 * with an error condition) when it can never be delivered; `requeue` (AMQP 1.0: released) when it
 * may succeed later.
 */
export type DeliveryOutcome = 'ack' | 'dead-letter' | 'requeue';

export interface DeliveryHandler {
  /**
   * Called for every delivery, with the rule of the consumer that received it (during a reload,
   * the old rule's consumer still resolves by the old rule); `settle` must be called exactly once.
   */
  onDelivery(rule: DownlinkRuleResolver, delivery: InboundDelivery, settle: (outcome: DeliveryOutcome) => void): void;
}

/** One publish to the MQTT subscribers. */
export interface DevicePublishRequest {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1 | 2;
  readonly retain: boolean;
}

export interface DevicePublisher {
  /** Hands a message to the MQTT server; `done(null)` once it is stored for offline sessions and queued for online ones. */
  publishToDevices(message: DevicePublishRequest, done: (error: Error | null) => void): void;
}
