import { Counter, Gauge, Registry } from 'prom-client';

/** What the flow gauges read, at scrape time. */
export interface FlowReadings {
  readonly state: string;
  readonly pendingMessages: number;
  readonly pendingBytes: number;
  readonly waiting: number;
}

export const METRIC_PREFIX = 'mqtt_amqp_bridge_';

/** Why an uplink publish was not forwarded although the device is acknowledged (counted, never silent). */
export type UplinkDropReason = 'render_failed' | 'exchange_not_found' | 'too_large' | 'qos0_failed' | 'qos0_overflow' | 'rate_limited';
/** Why an AMQP delivery was dead-lettered instead of published to MQTT. */
export type DownlinkRejectReason = 'render_failed' | 'unmatched' | 'mqtt_refused';

/** Why a QoS 1/2 publish was not acknowledged (the device retransmits it). */
export type UplinkFailReason = 'nacked' | 'timeout' | 'abandoned' | 'shutdown';

/**
 * The bridge's metrics, in a registry of its own (no global state: two bridges in one
 * process count separately). Labels are bounded: rule names come from the config, and
 * client ids and topics are never labels.
 */
export class BridgeMetrics {
  readonly registry = new Registry();
  readonly uplinkMessages: Counter<'rule' | 'qos'>;
  readonly uplinkBytes: Counter<'rule' | 'qos'>;
  readonly uplinkUnmatched: Counter;
  readonly uplinkDropped: Counter<'reason'>;
  readonly uplinkFailed: Counter<'reason'>;
  readonly downlinkMessages: Counter<'rule' | 'qos'>;
  readonly downlinkBytes: Counter<'rule' | 'qos'>;
  readonly downlinkRejected: Counter<'rule' | 'reason'>;
  readonly offlineDropped: Counter;
  readonly limitsRefused: Counter<'limit'>;
  readonly aclDenied: Counter<'action'>;
  readonly rateDelayed: Counter;
  readonly loginsRefused: Counter<'return_code'>;

  constructor() {
    const registers = [this.registry];
    this.uplinkMessages = new Counter({
      name: `${METRIC_PREFIX}uplink_messages_total`,
      help: 'MQTT publishes forwarded to AMQP (confirmed by RabbitMQ), by rule and QoS.',
      labelNames: ['rule', 'qos'],
      registers,
    });
    this.uplinkBytes = new Counter({
      name: `${METRIC_PREFIX}uplink_bytes_total`,
      help: 'Payload bytes forwarded to AMQP, by rule and QoS.',
      labelNames: ['rule', 'qos'],
      registers,
    });
    this.uplinkUnmatched = new Counter({
      name: `${METRIC_PREFIX}uplink_unmatched_total`,
      help: 'MQTT publishes that no uplink rule matched (not forwarded).',
      registers,
    });
    this.uplinkDropped = new Counter({
      name: `${METRIC_PREFIX}uplink_dropped_total`,
      help: 'Uplink publishes not forwarded although the device was acknowledged, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.uplinkFailed = new Counter({
      name: `${METRIC_PREFIX}uplink_failed_total`,
      help: 'QoS 1/2 publishes not acknowledged to the device (it retransmits), by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.downlinkMessages = new Counter({
      name: `${METRIC_PREFIX}downlink_messages_total`,
      help: 'AMQP deliveries published to MQTT (and acknowledged to RabbitMQ), by rule and rule QoS.',
      labelNames: ['rule', 'qos'],
      registers,
    });
    this.downlinkBytes = new Counter({
      name: `${METRIC_PREFIX}downlink_bytes_total`,
      help: 'Payload bytes published to MQTT from AMQP, by rule and rule QoS.',
      labelNames: ['rule', 'qos'],
      registers,
    });
    this.downlinkRejected = new Counter({
      name: `${METRIC_PREFIX}downlink_rejected_total`,
      help: 'AMQP deliveries rejected without requeue (dead-lettered), by rule and reason.',
      labelNames: ['rule', 'reason'],
      registers,
    });
    this.limitsRefused = new Counter({
      name: `${METRIC_PREFIX}limits_refused_total`,
      help: 'Packets, connections, topics and subscriptions refused by a configured limit, by limit.',
      labelNames: ['limit'],
      registers,
    });
    this.aclDenied = new Counter({
      name: `${METRIC_PREFIX}acl_denied_total`,
      help: 'Publishes, subscriptions and wills the ACL denied, by action.',
      labelNames: ['action'],
      registers,
    });
    this.rateDelayed = new Counter({
      name: `${METRIC_PREFIX}uplink_rate_delayed_total`,
      help: 'QoS 1/2 publishes held back by limits.publishesPerSecond (then forwarded).',
      registers,
    });
    this.loginsRefused = new Counter({
      name: `${METRIC_PREFIX}logins_refused_total`,
      help: 'CONNECTs refused, by CONNACK return code (2 identifier, 3 unavailable, 4 bad credentials, 5 not authorized).',
      labelNames: ['return_code'],
      registers,
    });
    this.offlineDropped = new Counter({
      name: `${METRIC_PREFIX}offline_messages_dropped_total`,
      help: 'Oldest queued messages dropped because an offline session held mqtt.maxOfflineMessages.',
      registers,
    });
  }

  /** Gauges of the flow controller: its state (1 for the current one) and its pending figures. */
  observeFlow(flow: FlowReadings, states: readonly string[]): void {
    const registers = [this.registry];
    new Gauge({
      name: `${METRIC_PREFIX}flow_state`,
      help: 'Flow state: 1 for the current one of open, throttled, blocked, disconnected.',
      labelNames: ['state'],
      registers,
      collect() {
        for (const state of states) this.set({ state }, flow.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}flow_pending_messages`,
      help: 'Device publishes handed to AMQP and not yet confirmed.',
      registers,
      collect() {
        this.set(flow.pendingMessages);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}flow_pending_bytes`,
      help: 'Payload bytes handed to AMQP and not yet confirmed.',
      registers,
      collect() {
        this.set(flow.pendingBytes);
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}flow_waiting_publishes`,
      help: 'Device publishes waiting for admission (their senders are not read meanwhile).',
      registers,
      collect() {
        this.set(flow.waiting);
      },
    });
  }


  /** Every counter of the bridge with its values by label set, for the summary logged at shutdown. */
  async totals(): Promise<Record<string, number | Record<string, number>>> {
    const totals: Record<string, number | Record<string, number>> = {};
    for (const metric of await this.registry.getMetricsAsJSON()) {
      if (String(metric.type) !== 'counter') continue;
      const name = metric.name.slice(METRIC_PREFIX.length).replace(/_total$/, '');
      const values = metric.values.filter((value) => value.value !== 0);
      if (values.every((value) => Object.keys(value.labels).length === 0)) {
        totals[name] = values.reduce((sum, value) => sum + value.value, 0);
      } else {
        totals[name] = Object.fromEntries(values.map((value) => [Object.values(value.labels).join('/'), value.value]));
      }
    }
    return totals;
  }

  /** The current value of a counter (summed over the given labels), for tests and the CLI. */
  async value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) throw new Error(`no metric ${name}`);
    const { values } = await metric.get();
    return values
      .filter((value) => Object.entries(labels).every(([key, wanted]) => String((value.labels as Record<string, unknown>)[key]) === wanted))
      .reduce((sum, value) => sum + value.value, 0);
  }
}
