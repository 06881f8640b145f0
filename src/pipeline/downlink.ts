import type { Logger } from 'pino';
import { RenderError, RetainedLimitError } from '../errors.js';
import { describeDestination } from '../mapping/destination.js';
import type { DownlinkRoute, DownlinkRuleResolver } from '../mapping/downlink.js';
import { topicLevels } from '../protocol/mqtt.js';
import type { BridgeMetrics, DownlinkRejectReason } from '../observability/metrics.js';
import { RateLimitedWarning } from '../observability/rate-limited-warning.js';
import type { DeliveryHandler, DeliveryOutcome, DevicePublisher, InboundDelivery } from '../ports.js';

/**
 * How long a delivery the MQTT side could not take is held before it is requeued: RabbitMQ
 * hands a requeued message straight back, so without a pause a lasting failure would spin.
 */
export const DOWNLINK_REQUEUE_DELAY_MS = 1_000;

export interface DownlinkPipelineOptions {
  devices: DevicePublisher;
  /** The most topic levels the MQTT server accepts in a publish; a topic with more can never be published. */
  maxTopicLevels: number;
  metrics: BridgeMetrics;
  logger: Logger;
  requeueDelayMs?: number;
}

/**
 * AMQP -> MQTT: renders each delivery's topic from its rule and publishes it to the MQTT
 * subscribers. The delivery is acknowledged only once the MQTT side has taken it; one that can
 * never become an MQTT publish is dead-lettered (never requeued, so it cannot block the queue),
 * as is a retained one past the retained limits; one the MQTT side could not take now (a
 * session store failing, the server stopping) is requeued.
 */
export class DownlinkPipeline implements DeliveryHandler {
  private readonly rejections: RateLimitedWarning;
  private readonly requeues: RateLimitedWarning;

  constructor(private readonly options: DownlinkPipelineOptions) {
    this.rejections = new RateLimitedWarning({ logger: options.logger, message: 'AMQP delivery dead-lettered: it cannot become an MQTT publish' });
    this.requeues = new RateLimitedWarning({ logger: options.logger, message: 'AMQP delivery requeued: the MQTT side could not take it now' });
  }

  onDelivery(resolver: DownlinkRuleResolver, delivery: InboundDelivery, settle: (outcome: DeliveryOutcome) => void): void {
    const rule = resolver.rule.name;
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
    const levels = topicLevels(route.topic);
    if (levels > this.options.maxTopicLevels) {
      this.reject(rule, delivery, 'mqtt_refused', `the topic has ${levels} levels; the MQTT server takes at most ${this.options.maxTopicLevels}`, settle);
      return;
    }
    const qos = String(route.qos);
    this.options.devices.publishToDevices({ topic: route.topic, payload: delivery.content, qos: route.qos, retain: route.retain }, (error) => {
      if (error instanceof RetainedLimitError) {
        // A lasting refusal, not a passing failure: requeued, it would come straight back and
        // hold the queue up until something clears a retained message. Dead-lettered, it is
        // kept (with a dead-letter exchange) for whoever raises the limit or clears room.
        this.reject(rule, delivery, 'retained_limit', error.message, settle);
        return;
      }
      if (error) {
        this.requeue(rule, delivery, error, settle);
        return;
      }
      this.options.metrics.downlinkMessages.inc({ rule, qos });
      this.options.metrics.downlinkBytes.inc({ rule, qos }, delivery.content.length);
      settle('ack');
    });
  }

  private reject(rule: string, delivery: InboundDelivery, reason: DownlinkRejectReason, why: string, settle: (outcome: DeliveryOutcome) => void): void {
    this.options.metrics.downlinkRejected.inc({ rule, reason });
    this.rejections.warn(null, { rule, reason, ...describeDestination(delivery), err: why });
    settle('dead-letter');
  }

  private requeue(rule: string, delivery: InboundDelivery, error: Error, settle: (outcome: DeliveryOutcome) => void): void {
    this.options.metrics.downlinkRequeued.inc({ rule });
    this.requeues.warn(null, { rule, ...describeDestination(delivery), err: error });
    setTimeout(() => settle('requeue'), this.options.requeueDelayMs ?? DOWNLINK_REQUEUE_DELAY_MS);
  }
}
