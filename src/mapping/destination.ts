/**
 * Where a message goes on the broker, or where it came from: an exchange and a routing key
 * (AMQP 0-9-1), or an address and an optional subject (AMQP 1.0). Each kind says it has none of
 * the other's fields, so that `isAddressDestination` tells them apart.
 */
export type Destination = ExchangeDestination | AddressDestination;

export interface ExchangeDestination {
  readonly exchange: string;
  readonly routingKey: string;
  readonly address?: never;
  readonly subject?: never;
}

export interface AddressDestination {
  /** The AMQP 1.0 node: a sender's target uplink, a receiver's source downlink. */
  readonly address: string;
  /** The message's subject; undefined when it has none. */
  readonly subject: string | undefined;
  readonly exchange?: never;
  readonly routingKey?: never;
}

export function isAddressDestination(destination: Destination): destination is AddressDestination {
  return destination.address !== undefined;
}

/** For logs: `exchange "X", routing key "K"` or `address "A", subject "S"`. */
export function describeDestination(destination: Destination): Record<string, string | undefined> {
  return isAddressDestination(destination)
    ? { address: destination.address, subject: destination.subject }
    : { exchange: destination.exchange, routingKey: destination.routingKey };
}
