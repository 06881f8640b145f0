import type { AedesOptions, Client } from 'aedes';
import { topicLimitBroken, type LimitName, type TopicLimits } from '../limits.js';
import { BRIDGE_TOPIC_PREFIX, type AccessPolicy } from '../access.js';
import { heldSubscriptions } from '../aedes-internals.js';

type AuthorizeSubscribe = NonNullable<AedesOptions['authorizeSubscribe']>;

export interface SubscribeLimits extends TopicLimits {
  readonly maxSubscriptionsPerClient: number;
}

/**
 * Refuses, with SUBACK return code 0x80 for that filter [MQTT-3.9.3], a filter over the topic
 * limits or one that would take a client past its number of subscriptions.
 */
export function createAuthorizeSubscribe(
  limits: SubscribeLimits,
  refused: (limit: LimitName, client: Client, filter: string) => void,
  access: AccessPolicy | null = null,
  usernameOf: (client: Client) => string | undefined = () => undefined,
) {
  /** Filters granted in a SUBSCRIBE that aedes has not stored yet (its filters are authorized in parallel). */
  const granting = new WeakMap<Client, Set<string>>();
  const authorize: AuthorizeSubscribe = (client, subscription, callback) => {
    const broken = topicLimitBroken(subscription.topic, limits);
    if (broken) {
      refused(broken, client, subscription.topic);
      callback(null, null);
      return;
    }
    if (subscription.topic.startsWith(BRIDGE_TOPIC_PREFIX)) {
      callback(null, null); // the bridge's own topics (DENIED_TOPIC) are nobody's to read
      return;
    }
    if (access && !access.canSubscribe({ clientId: client.id, username: usernameOf(client) }, subscription.topic)) {
      access.denied('subscribe', client.id, subscription.topic);
      callback(null, null);
      return;
    }
    const held = heldSubscriptions(client);
    if (!(subscription.topic in held)) {
      let pending = granting.get(client);
      if (!pending) {
        pending = new Set();
        granting.set(client, pending);
        setImmediate(() => granting.delete(client)); // the SUBSCRIBE is stored by then
      }
      let stored = Object.keys(held).length;
      for (const filter of pending) if (!(filter in held)) stored++; // granted, not yet stored
      if (stored >= limits.maxSubscriptionsPerClient && !pending.has(subscription.topic)) {
        refused('subscriptions', client, subscription.topic);
        callback(null, null);
        return;
      }
      pending.add(subscription.topic);
    }
    callback(null, subscription);
  };
  return authorize;
}
