/** Who may publish and subscribe where (the ACL); the MQTT side only asks. */
export interface AccessPolicy {
  /** False while there is no ACL: everything is allowed, and the hooks need not ask. */
  readonly enforced: boolean;
  canPublish(identity: { clientId: string; username: string | undefined }, topic: string): boolean;
  canSubscribe(identity: { clientId: string; username: string | undefined }, filter: string): boolean;
  /** `disconnect`: a denied PUBLISH closes the connection; `drop`: it is acknowledged and delivered nowhere. */
  readonly onDeniedPublish: 'disconnect' | 'drop';
  /** Called for every denial (it is counted and logged there). */
  denied(action: 'publish' | 'subscribe' | 'will' | 'deliver', clientId: string, topic: string): void;
}

/**
 * Where a PUBLISH denied under `onDeniedPublish: drop` is sent instead: aedes acknowledges a
 * publish only by publishing it, and nobody can subscribe here (the bridge refuses filters
 * under `$bridge/`), nor is it forwarded to AMQP.
 */
export const DENIED_TOPIC = '$bridge/denied';
export const BRIDGE_TOPIC_PREFIX = '$bridge/';

/** A per-client publish rate (token bucket): QoS 0 over it is dropped, QoS 1/2 delayed. */
export interface PublishRate {
  /** 0 when a publish may go now, else milliseconds until it may (the slot is reserved). */
  take(clientId: string): number;
  /** Takes a slot only if one is free now. */
  tryTake(clientId: string): boolean;
  dropped(clientId: string): void;
  delayed(clientId: string): void;
}
