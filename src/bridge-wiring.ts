import type { Logger } from 'pino';
import type { DownlinkSubscription } from './amqp/downlink-consumers.js';
import type { Acl } from './auth/acl.js';
import { downlinkQueueName, type BridgeConfig, type DownlinkRuleSettings } from './config/schema.js';
import { RateLimiter } from './flow/rate-limiter.js';
import type { DownlinkRuleResolver } from './mapping/downlink.js';
import type { AccessPolicy, PublishRate } from './mqtt/access.js';
import type { BridgeMetrics } from './observability/metrics.js';
import { RateLimitedWarning } from './observability/rate-limited-warning.js';

/** The queue each downlink rule consumes (AMQP 1.0: the address it receives from) and, for `exchange` rules, how the bridge declares and binds it. */
export function downlinkSubscriptions(rules: readonly DownlinkRuleSettings[], compiled: readonly DownlinkRuleResolver[]): DownlinkSubscription[] {
  return rules.map((rule, index) => {
    const resolver = compiled[index]!;
    const bindingKey = resolver.rule.bindingKey;
    return {
      rule: rule.name,
      queue: rule.address ?? downlinkQueueName(rule),
      binding:
        rule.exchange !== undefined && bindingKey !== null
          ? { exchange: rule.exchange, key: bindingKey, deadLetterExchange: rule.deadLetterExchange }
          : null,
      prefetch: rule.prefetch,
      resolver,
      configPath: `downlink[${index}]`,
    };
  });
}

/** The ACL in force (null: none, everything allowed) and what a denied PUBLISH gets. */
export interface AclInForce {
  readonly rules: Acl;
  readonly onDeniedPublish: 'disconnect' | 'drop';
}

/**
 * The current ACL as the MQTT side asks it, read anew at each question (a reload swaps it), with
 * every denial counted and logged (rate-limited).
 */
export function accessPolicy(current: () => AclInForce | null, metrics: BridgeMetrics, logger: Logger): AccessPolicy {
  const warning = new RateLimitedWarning({ logger, message: 'denied by the ACL' });
  return {
    get enforced() {
      return current() !== null;
    },
    canPublish: (identity, topic) => current()?.rules.canPublish(identity, topic) ?? true,
    canSubscribe: (identity, filter) => current()?.rules.canSubscribe(identity, filter) ?? true,
    get onDeniedPublish() {
      return current()?.onDeniedPublish ?? 'disconnect';
    },
    denied(action, clientId, topic) {
      metrics.aclDenied.inc({ action });
      warning.warn(null, { action, clientId, topic });
    },
  };
}

/** `limits.publishesPerSecond` as the MQTT side applies it, with its drops and delays counted. */
export function publishRate(limits: BridgeConfig['limits'], metrics: BridgeMetrics): PublishRate | null {
  if (limits.publishesPerSecond === 0) return null;
  const limiter = new RateLimiter({ perSecond: limits.publishesPerSecond, burst: limits.publishBurst ?? limits.publishesPerSecond });
  return {
    take: (clientId) => limiter.take(clientId),
    tryTake: (clientId) => limiter.tryTake(clientId),
    dropped: () => metrics.uplinkDropped.inc({ reason: 'rate_limited' }),
    delayed: () => metrics.rateDelayed.inc(),
  };
}
