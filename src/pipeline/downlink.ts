import type { Logger } from 'pino';
import { RenderError } from '../errors.js';
import type { DownlinkRoute, DownlinkRuleResolver } from '../mapping/downlink.js';
import type { BridgeMetrics, DownlinkRejectReason } from '../observability/metrics.js';
import { RateLimitedWarning } from '../observability/rate-limited-warning.js';
import type { DeliveryHandler, DeliveryOutcome, DevicePublisher, InboundDelivery } from '../ports.js';

/** A delivery carrying this header set to true (or "true") is published retained. */
export const RETAIN_HEADER = 'x-mqtt-retain';

export interface DownlinkPipelineOptions {
  /** The current downlink rules by name; a function so that a reload can swap them. */
  resolvers: () => ReadonlyMap<string, DownlinkRuleResolver>;
  devices: DevicePublisher;
  metrics: BridgeMetrics;
  logger: Logger;
}

/**
 * AMQP -> MQTT: renders each delivery's topic from its rule and publishes it to the MQTT
 * subscribers. The delivery is acknowledged only once the MQTT side has taken it; one that can
 * never become an MQTT publish is dead-lettered (never requeued, so it cannot block the queue).
 */
export class DownlinkPipeline implements DeliveryHandler {
  private readonly rejections: RateLimitedWarning;

  constructor(private readonly options: DownlinkPipelineOptions) {
    this.rejections = new RateLimitedWarning({ logger: options.logger, message: 'AMQP delivery dead-lettered: it cannot become an MQTT publish' });
  }

  onDelivery(rule: string, delivery: InboundDelivery, settle: (outcome: DeliveryOutcome) => void): void {
    const resolver = this.options.resolvers().get(rule);
    if (!resolver) {
      settle('requeue'); // the rule went away in a reload; another consumer takes it
      return;
    }
    let route: DownlinkRoute | null;
    try {
      route = resolver.resolve(delivery);
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      this.reject(rule, delivery, 'render_failed', error.message, settle);
      return;
    }
    if (!route) {
      this.reject(rule, delivery, 'unmatched', `routing key does not match the rule's pattern "${resolver.rule.pattern.source}"`, settle);
      return;
    }
    const retain = route.retain || isTrue(delivery.headers?.[RETAIN_HEADER]);
    const qos = String(route.qos);
    this.options.devices.publishToDevices({ topic: route.topic, payload: delivery.content, qos: route.qos, retain }, (error) => {
      if (error) {
        this.reject(rule, delivery, 'mqtt_refused', error.message, settle);
        return;
      }
      this.options.metrics.downlinkMessages.inc({ rule, qos });
      this.options.metrics.downlinkBytes.inc({ rule, qos }, delivery.content.length);
      settle('ack');
    });
  }

  private reject(rule: string, delivery: InboundDelivery, reason: DownlinkRejectReason, why: string, settle: (outcome: DeliveryOutcome) => void): void {
    this.options.metrics.downlinkRejected.inc({ rule, reason });
    this.rejections.warn(null, { rule, reason, exchange: delivery.exchange, routingKey: delivery.routingKey, err: why });
    settle('dead-letter');
  }
}

function isTrue(value: unknown): boolean {
  return value === true || value === 'true' || (Buffer.isBuffer(value) && value.toString() === 'true');
}
