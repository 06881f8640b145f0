import type { Logger } from 'pino';
import { BridgeError, PublishError, RenderError } from '../errors.js';
import type { Admission, FlowController, RefusalReason, Release } from '../flow/flow-controller.js';
import { isAddressDestination } from '../mapping/destination.js';
import type { UplinkResolver, UplinkRoute } from '../mapping/uplink.js';
import type { DevicePublish, PublishHandler } from '../mqtt/types.js';
import type { BridgeMetrics, UplinkDropReason, UplinkFailReason } from '../observability/metrics.js';
import { RateLimitedWarning } from '../observability/rate-limited-warning.js';
import { MessageIds } from '../util/message-ids.js';
import type { MessagePublisher, OutboundMessage } from '../ports.js';

export interface UplinkPipelineOptions {
  /** The current rules; a function so that a reload can swap them between two publishes. */
  resolver: () => UplinkResolver;
  publisher: MessagePublisher;
  flow: FlowController;
  metrics: BridgeMetrics;
  logger: Logger;
  newMessageId?: () => string;
  now?: () => number;
}

/**
 * Failures the device's retransmission cannot cure: the publish is acknowledged, dropped and
 * counted. (A publish to an exchange RabbitMQ refuses is not one: it may be fixed meanwhile, so
 * QoS 1/2 wait for it and are never acknowledged; only QoS 0 fails at once, as `exchange_refused`.)
 */
const PERMANENT_FAILURES: Partial<Record<PublishError['code'], UplinkDropReason>> = {
  BRIDGE_ERR_PUBLISH_TOO_LARGE: 'too_large',
};

/** Why a QoS 0 publish that failed was dropped, by the failure's code. */
const QOS0_DROP_REASONS: Partial<Record<PublishError['code'], UplinkDropReason>> = {
  ...PERMANENT_FAILURES,
  BRIDGE_ERR_EXCHANGE_REFUSED: 'exchange_refused',
  BRIDGE_ERR_ADDRESS_REFUSED: 'address_refused',
};

const TRANSIENT_FAILURES: Partial<Record<PublishError['code'], UplinkFailReason>> = {
  BRIDGE_ERR_PUBLISH_NACKED: 'nacked',
  BRIDGE_ERR_PUBLISH_REJECTED: 'rejected',
  BRIDGE_ERR_PUBLISH_RELEASED: 'released',
  BRIDGE_ERR_PUBLISH_MODIFIED: 'modified',
  BRIDGE_ERR_PUBLISH_TIMEOUT: 'timeout',
  BRIDGE_ERR_PUBLISH_ABANDONED: 'abandoned',
  BRIDGE_ERR_PUBLISHER_CLOSED: 'shutdown',
};

/**
 * MQTT -> AMQP: maps each device publish through the uplink rules and publishes it with the
 * QoS semantics of docs/architecture.md. QoS 0 is acknowledged at once (at most once); QoS 1/2 only once
 * RabbitMQ confirmed, and never after a nack or a timeout.
 */
export class UplinkPipeline implements PublishHandler {
  private readonly unmatched: RateLimitedWarning;
  private readonly forwarder: UplinkForwarder;
  private readonly now: () => number;

  constructor(private readonly options: UplinkPipelineOptions) {
    this.now = options.now ?? Date.now;
    this.unmatched = new RateLimitedWarning({ logger: options.logger, message: 'publish matches no uplink rule; not forwarded' });
    this.forwarder = new UplinkForwarder(options, options.newMessageId ?? new MessageIds().newId);
  }

  onPublish(publish: DevicePublish, done: (error: Error | null) => void): void {
    const { metrics } = this.options;
    const receivedAt = this.now();
    let route: UplinkRoute | null;
    try {
      route = this.options.resolver().resolve(publish);
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      metrics.uplinkDropped.inc({ reason: 'render_failed' });
      this.forwarder.failures.warn(null, { topic: publish.topic, clientId: publish.clientId, err: error.message });
      done(null);
      return;
    }
    if (!route) {
      metrics.uplinkUnmatched.inc();
      this.unmatched.warn(publish.topic, { topic: publish.topic, clientId: publish.clientId });
      done(null);
      return;
    }
    this.options.flow.admit(new UplinkAdmission(this.forwarder, publish, route, receivedAt, done));
  }
}

/**
 * One mapped publish asking the flow controller for admission: the AMQP message is built only
 * once it is admitted, since under overload most QoS 0 never are.
 */
class UplinkAdmission implements Admission {
  readonly clientId: string;
  readonly bytes: number;
  readonly qos: 0 | 1 | 2;

  constructor(
    private readonly forwarder: UplinkForwarder,
    private readonly publish: DevicePublish,
    private readonly route: UplinkRoute,
    readonly receivedAt: number,
    private readonly done: (error: Error | null) => void,
  ) {
    this.clientId = publish.clientId;
    this.bytes = publish.payload.length;
    this.qos = publish.qos;
  }

  admitted(release: Release): void {
    this.forwarder.forward(this.publish, this.route, this.receivedAt, release, this.done);
  }

  refused(reason: RefusalReason): void {
    const { publish, route, done, forwarder } = this;
    if (publish.qos === 0) {
      forwarder.metrics.uplinkDropped.inc({ reason: reason === 'qos0_overflow' ? 'qos0_overflow' : 'qos0_failed' });
      done(null);
      return;
    }
    const error =
      reason === 'timeout'
        ? new PublishError('BRIDGE_ERR_PUBLISH_TIMEOUT', 'the publish waited for admission longer than amqp.publishTimeoutMs')
        : new PublishError('BRIDGE_ERR_PUBLISHER_CLOSED', 'the bridge is shutting down');
    forwarder.failed(publish, route.rule, error, done);
  }
}

/** Publishes admitted messages and settles each publish with its device: acknowledged, dropped and counted, or failed. */
class UplinkForwarder {
  readonly metrics: BridgeMetrics;
  readonly failures: RateLimitedWarning;

  constructor(
    private readonly options: UplinkPipelineOptions,
    private readonly newMessageId: () => string,
  ) {
    this.metrics = options.metrics;
    this.failures = new RateLimitedWarning({ logger: options.logger, message: 'uplink publish failed' });
  }

  /** Hands an admitted publish to the publisher; acknowledges the device as its QoS says. */
  forward(publish: DevicePublish, route: UplinkRoute, receivedAt: number, release: Release, done: (error: Error | null) => void): void {
    const message = outboundMessage(publish, route, this.newMessageId(), receivedAt);
    const rule = route.rule;
    if (publish.qos === 0) {
      this.options.publisher.publish(message, (error) => {
        release();
        if (error) this.dropped(publish, rule, error, QOS0_DROP_REASONS[error.code] ?? 'qos0_failed');
        else this.metrics.uplinkForwarded(rule, 0, message.content.length);
      });
      done(null);
      return;
    }
    this.options.publisher.publish(message, (error) => {
      release();
      if (!error) {
        this.metrics.uplinkForwarded(rule, publish.qos, message.content.length);
        done(null);
        return;
      }
      const permanent = PERMANENT_FAILURES[error.code];
      if (permanent) {
        this.dropped(publish, rule, error, permanent);
        done(null);
        return;
      }
      this.failed(publish, rule, error, done);
    });
  }

  /** Not acknowledged: the device retransmits it (on the connection aedes closes, or the next one). */
  failed(publish: DevicePublish, rule: string, error: PublishError, done: (error: Error | null) => void): void {
    this.metrics.uplinkFailed.inc({ reason: TRANSIENT_FAILURES[error.code] ?? 'nacked' });
    this.failures.warn(null, { rule, clientId: publish.clientId, code: error.code, err: error.message });
    done(error);
  }

  private dropped(publish: DevicePublish, rule: string, error: BridgeError, reason: UplinkDropReason): void {
    this.metrics.uplinkDropped.inc({ reason });
    this.failures.warn(null, { rule, topic: publish.topic, clientId: publish.clientId, code: error.code, err: error.message });
  }
}

/**
 * The AMQP message of an admitted publish, written out field by field: a spread of the route
 * made a slow dictionary-mode object per message, and every later read of it slow too.
 */
function outboundMessage(publish: DevicePublish, route: UplinkRoute, messageId: string, receivedAt: number): OutboundMessage {
  const content = publish.payload;
  const timestamp = Math.floor(receivedAt / 1000);
  const atMostOnce = publish.qos === 0;
  const { headers, properties } = route;
  if (isAddressDestination(route)) {
    return { address: route.address, subject: route.subject, content, headers, properties, messageId, timestamp, receivedAt, atMostOnce };
  }
  return { exchange: route.exchange, routingKey: route.routingKey, content, headers, properties, messageId, timestamp, receivedAt, atMostOnce };
}
