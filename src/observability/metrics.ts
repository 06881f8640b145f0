import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { BridgeError } from '../errors.js';
import { TalliedHistogram } from './tallied-histogram.js';

export const METRIC_PREFIX = 'mqtt_amqp_bridge_';

/** Why an uplink publish was not forwarded although the device is acknowledged (counted, never silent). */
export type UplinkDropReason = 'render_failed' | 'exchange_refused' | 'address_refused' | 'too_large' | 'qos0_failed' | 'qos0_overflow' | 'rate_limited';
/** Why an AMQP delivery was dead-lettered instead of published to MQTT. */
export type DownlinkRejectReason = 'render_failed' | 'unmatched' | 'mqtt_refused' | 'retained_limit' | 'undecodable';
/** Why a QoS 1/2 publish was not acknowledged (the device retransmits it). */
export type UplinkFailReason = 'nacked' | 'rejected' | 'released' | 'modified' | 'timeout' | 'abandoned' | 'shutdown';

export interface MetricDefinition {
  readonly type: 'counter' | 'gauge' | 'histogram';
  /** Without METRIC_PREFIX. */
  readonly name: string;
  readonly help: string;
  readonly labels: readonly string[];
  readonly buckets?: readonly number[];
}

/** Confirm latency buckets, in seconds: 0.5 ms to 10 s. */
export const CONFIRM_LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Every metric of the bridge: the one list the registry is built from and docs/operations.md's
 * reference is generated from. Labels are bounded: rule names come from the config, reasons and
 * states are fixed sets, and client ids and topics are never labels.
 */
export const METRICS = {
  uplinkMessages: { type: 'counter', name: 'uplink_messages_total', help: 'MQTT publishes forwarded to AMQP (confirmed by RabbitMQ), by rule and QoS.', labels: ['rule', 'qos'] },
  uplinkBytes: { type: 'counter', name: 'uplink_bytes_total', help: 'Payload bytes forwarded to AMQP, by rule and QoS.', labels: ['rule', 'qos'] },
  uplinkUnmatched: { type: 'counter', name: 'uplink_unmatched_total', help: 'MQTT publishes that no uplink rule matched (not forwarded).', labels: [] },
  uplinkDropped: {
    type: 'counter',
    name: 'uplink_dropped_total',
    help: 'Uplink publishes not forwarded although the device was acknowledged (or, QoS 0, dropped), by reason: render_failed, exchange_refused (QoS 0 to an exchange RabbitMQ refuses; QoS 1/2 there are not acknowledged and time out), address_refused (the same for an AMQP 1.0 address), too_large, qos0_failed, qos0_overflow, rate_limited.',
    labels: ['reason'],
  },
  uplinkFailed: {
    type: 'counter',
    name: 'uplink_failed_total',
    help: 'QoS 1/2 publishes not acknowledged to the device (it retransmits), by reason: nacked (AMQP 0-9-1), rejected, released, modified (the AMQP 1.0 outcome), timeout, abandoned, shutdown.',
    labels: ['reason'],
  },
  uplinkRateDelayed: { type: 'counter', name: 'uplink_rate_delayed_total', help: 'QoS 1/2 publishes held back by limits.publishesPerSecond (then forwarded).', labels: [] },
  confirmLatency: {
    type: 'histogram',
    name: 'amqp_confirm_latency_seconds',
    help: 'Time from writing a publish to RabbitMQ to its confirm.',
    labels: [],
    buckets: CONFIRM_LATENCY_BUCKETS,
  },
  downlinkMessages: { type: 'counter', name: 'downlink_messages_total', help: 'AMQP deliveries published to MQTT (and acknowledged to RabbitMQ), by rule and rule QoS.', labels: ['rule', 'qos'] },
  downlinkBytes: { type: 'counter', name: 'downlink_bytes_total', help: 'Payload bytes published to MQTT from AMQP, by rule and rule QoS.', labels: ['rule', 'qos'] },
  downlinkRejected: {
    type: 'counter',
    name: 'downlink_rejected_total',
    help: 'AMQP deliveries rejected without requeue (dead-lettered), by rule and reason: render_failed, unmatched, mqtt_refused (a topic the MQTT server never takes), retained_limit (a retained message past mqtt.maxRetainedMessages or maxRetainedBytes), undecodable (AMQP 1.0: a body that is neither data sections nor a binary or string amqp-value).',
    labels: ['rule', 'reason'],
  },
  downlinkRequeued: {
    type: 'counter',
    name: 'downlink_requeued_total',
    help: 'AMQP deliveries requeued because the MQTT side could not take them then (its session store failed, it was stopping), by rule.',
    labels: ['rule'],
  },
  offlineDropped: { type: 'counter', name: 'offline_messages_dropped_total', help: 'Oldest queued messages dropped because an offline session held mqtt.maxOfflineMessages.', labels: [] },
  flowState: { type: 'gauge', name: 'flow_state', help: 'Flow state: 1 for the current one of open, throttled, blocked, disconnected.', labels: ['state'] },
  flowPendingMessages: { type: 'gauge', name: 'flow_pending_messages', help: 'Device publishes handed to AMQP and not yet confirmed.', labels: [] },
  flowPendingBytes: { type: 'gauge', name: 'flow_pending_bytes', help: 'Payload bytes handed to AMQP and not yet confirmed.', labels: [] },
  flowWaiting: { type: 'gauge', name: 'flow_waiting_publishes', help: 'Device publishes waiting for admission (their senders are not read meanwhile).', labels: [] },
  connections: { type: 'gauge', name: 'mqtt_connections', help: 'Open MQTT connections, by listener type (tcp, ws, tls, wss).', labels: ['listener'] },
  bufferedBytes: {
    type: 'gauge',
    name: 'mqtt_buffered_bytes',
    help: 'Bytes held for packets and WebSocket messages not complete yet (announced sizes), and all that connections not yet logged in sent, by login state: unauthenticated, authenticated. mqtt.maxBufferedBytes bounds the sum.',
    labels: ['login'],
  },
  amqpConnected: { type: 'gauge', name: 'amqp_connected', help: '1 while the AMQP connection is up.', labels: [] },
  amqpRefused: {
    type: 'gauge',
    name: 'amqp_refused',
    help: 'Exchanges and queues of the configuration RabbitMQ refuses now (declared with another type or other arguments, missing, access refused), by kind: exchange, queue, address (AMQP 1.0: a link the broker refuses). The rules that need them wait (/readyz lists them); the others flow.',
    labels: ['kind'],
  },
  retainedMessages: { type: 'gauge', name: 'retained_messages', help: 'Retained messages stored (see mqtt.maxRetainedMessages).', labels: [] },
  retainedBytes: { type: 'gauge', name: 'retained_bytes', help: 'Bytes (topic and payload) of the retained messages stored (see mqtt.maxRetainedBytes).', labels: [] },
  amqpReconnects: { type: 'counter', name: 'amqp_reconnects_total', help: 'AMQP connections made again after one was lost.', labels: [] },
  limitsRefused: {
    type: 'counter',
    name: 'limits_refused_total',
    help: 'Packets, connections, topics, subscriptions, retained messages and QoS 2 publishes refused by a configured limit or by MQTT itself, by limit: packet_size, connections, topic_length, topic_levels, subscriptions, connect_size, unauthenticated_bytes, buffered_bytes, buffered_bytes_per_address, connections_per_address, packet_timeout, retained_messages, retained_bytes, retained_messages_per_user, retained_bytes_per_user, qos2_pending_bytes, invalid_topic (a topic or filter MQTT forbids), protocol_violation (a malformed packet or a protocol error; the connection is closed).',
    labels: ['limit'],
  },
  aclDenied: {
    type: 'counter',
    name: 'acl_denied_total',
    help: 'What the ACL denied, by action: publish, subscribe, will (at CONNECT), deliver (a message not sent to a client whose ACL does not let it receive that topic).',
    labels: ['action'],
  },
  sessions: {
    type: 'gauge',
    name: 'mqtt_sessions',
    help: 'MQTT sessions, by state: connected (client ids connected now), offline (persistent sessions whose client is away, kept for mqtt.sessionExpirySeconds).',
    labels: ['state'],
  },
  sessionsExpired: { type: 'counter', name: 'mqtt_sessions_expired_total', help: 'Persistent sessions removed after mqtt.sessionExpirySeconds offline, with their subscriptions and queued messages.', labels: [] },
  sessionsRefused: {
    type: 'counter',
    name: 'mqtt_sessions_refused_total',
    help: 'CONNECTs refused (CONNACK 5) by reason: owned_by_another (the client id is held by another user), sessions_per_user (the user holds mqtt.maxSessionsPerUser persistent sessions).',
    labels: ['reason'],
  },
  loginsRefused: {
    type: 'counter',
    name: 'logins_refused_total',
    help: 'CONNECTs refused, by CONNACK return code (1 protocol level, 2 identifier, 3 unavailable, 4 bad credentials, 5 not authorized).',
    labels: ['return_code'],
  },
  mqttStateReady: {
    type: 'gauge',
    name: 'mqtt_state_ready',
    help: 'By store (memory, redis: mqtt.persistence.type): 1 while the MQTT state can serve. With redis, 0 while Redis is unreachable, slow or failing (CONNECTs get CONNACK 3, retained and QoS 2 publishes are not acknowledged; /readyz says why).',
    labels: ['store'],
  },
  clusterInstances: {
    type: 'gauge',
    name: 'cluster_instances',
    help: 'With mqtt.persistence.type redis: the other bridge instances (or workers) on the same Redis that this one routes to.',
    labels: [],
  },
  clusterFilters: {
    type: 'gauge',
    name: 'cluster_filters',
    help: "With mqtt.persistence.type redis: subscription filters in the routing table, by where: local (this instance's clients), remote (the other instances', one held by two counted twice).",
    labels: ['where'],
  },
  clusterMessages: {
    type: 'counter',
    name: 'cluster_messages_total',
    help: 'With mqtt.persistence.type redis: publishes sent to other instances (one per instance with a matching subscription) and received from them, by direction: sent, received.',
    labels: ['direction'],
  },
  clusterMessagesLost: {
    type: 'counter',
    name: 'cluster_messages_lost_total',
    help: 'With mqtt.persistence.type redis: publishes between instances that were lost (at most once between instances), by reason: send_failed (Redis refused or was away), unreceived (no instance listened: it died), receive_backlog (local delivery too far behind), malformed (unreadable: another version of the bridge?).',
    labels: ['reason'],
  },
  configReloads: { type: 'counter', name: 'config_reloads_total', help: 'Configuration reloads, by result: applied, invalid.', labels: ['result'] },
} as const satisfies Record<string, MetricDefinition>;

/** Worker states the primary counts (`run --workers N`). */
export const WORKER_STATE_LABELS = ['starting', 'running', 'restarting', 'stopping'] as const;
export type WorkerState = (typeof WORKER_STATE_LABELS)[number];

/**
 * The metrics of the primary process of `run --workers N` (no worker has them): its `/metrics`
 * serves them beside the workers' aggregated ones.
 */
export const WORKER_METRICS = {
  workers: {
    type: 'gauge',
    name: 'workers',
    help: 'With `run --workers N`: worker processes by state: starting, running, restarting (dead, waiting for its restart), stopping.',
    labels: ['state'],
  },
  workerRestarts: {
    type: 'counter',
    name: 'worker_restarts_total',
    help: 'With `run --workers N`: workers restarted after they died (crashed, killed, or stopped without being asked).',
    labels: [],
  },
} as const satisfies Record<string, MetricDefinition>;

/** The primary's own metrics (`run --workers N`), in a registry of their own. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly restarts = counter(WORKER_METRICS.workerRestarts, this.registry);

  constructor(states: () => Readonly<Record<WorkerState, number>>) {
    new Gauge({
      name: METRIC_PREFIX + WORKER_METRICS.workers.name,
      help: WORKER_METRICS.workers.help,
      labelNames: [...WORKER_METRICS.workers.labels],
      registers: [this.registry],
      collect() {
        const counts = states();
        for (const state of WORKER_STATE_LABELS) this.set({ state }, counts[state]);
      },
    });
  }
}

/** What the gauges read, at scrape time. */
export interface GaugeReadings {
  flowState(): string;
  flowPendingMessages(): number;
  flowPendingBytes(): number;
  flowWaiting(): number;
  connections(): Readonly<Record<string, number>>;
  bufferedBytes(): { readonly unauthenticated: number; readonly authenticated: number };
  amqpConnected(): boolean;
  /** The exchanges and queues RabbitMQ refuses now. */
  amqpRefused(): ReadonlyArray<{ readonly kind: 'exchange' | 'queue' | 'address'; readonly name: string }>;
  sessions(): { readonly connected: number; readonly offline: number };
  retained(): { readonly messages: number; readonly bytes: number };
  /** The state in Redis and the routing between instances; null with `mqtt.persistence.type: memory`. */
  sharedState(): SharedStateReadings | null;
}

/** What the bridge reads of Redis and of the routing between instances. */
export interface SharedStateReadings {
  readonly ready: boolean;
  readonly cluster: {
    readonly instances: number;
    readonly localFilters: number;
    readonly remoteFilters: number;
    readonly sent: number;
    readonly sendFailed: number;
    readonly unreceived: number;
    readonly received: number;
    readonly receivedDropped: number;
    readonly malformed: number;
  } | null;
}

/**
 * Series read from the state shared in Redis (every worker of `run --workers N` reads the same
 * fleet-wide value): the primary takes them from one worker instead of adding them up.
 */
export const FLEET_WIDE_SERIES: ReadonlyArray<{ readonly name: string; readonly labels?: Readonly<Record<string, string>> }> = [
  { name: METRIC_PREFIX + 'mqtt_sessions', labels: { state: 'offline' } },
  { name: METRIC_PREFIX + 'retained_messages' },
  { name: METRIC_PREFIX + 'retained_bytes' },
];

interface MetricJson {
  readonly name: string;
  readonly values: ReadonlyArray<{ readonly labels: Partial<Record<string, string | number>>; readonly value: number }>;
}

/** The workers' metrics with the FLEET_WIDE_SERIES of all but the first set to 0, so that adding them up counts those once. */
export function countFleetWideOnce<M extends MetricJson>(perWorker: readonly (readonly M[])[]): M[][] {
  return perWorker.map((metrics, index) =>
    metrics.map((metric) => {
      const shared = FLEET_WIDE_SERIES.filter((series) => series.name === metric.name);
      if (index === 0 || shared.length === 0) return metric;
      const isShared = (labels: Partial<Record<string, string | number>>) => shared.some((series) => Object.entries(series.labels ?? {}).every(([key, wanted]) => String(labels[key]) === wanted));
      return { ...metric, values: metric.values.map((value) => (isShared(value.labels) ? { ...value, value: 0 } : value)) };
    }),
  );
}

export const FLOW_STATE_LABELS = ['open', 'throttled', 'blocked', 'disconnected'] as const;
export const LISTENER_LABELS = ['tcp', 'ws', 'tls', 'wss'] as const;
export const REFUSED_KIND_LABELS = ['exchange', 'queue', 'address'] as const;

type Labels<D extends MetricDefinition> = D['labels'][number];

function counter<D extends MetricDefinition>(definition: D, registry: Registry): Counter<Labels<D>> {
  return new Counter({ name: METRIC_PREFIX + definition.name, help: definition.help, labelNames: [...definition.labels] as Labels<D>[], registers: [registry] });
}

/** A counter whose `collect` (run whenever it is read) first brings it up to date. */
function tallied<D extends MetricDefinition>(definition: D, registry: Registry, update: () => void): Counter<Labels<D>> {
  return new Counter({
    name: METRIC_PREFIX + definition.name,
    help: definition.help,
    labelNames: [...definition.labels] as Labels<D>[],
    registers: [registry],
    collect: update,
  });
}

/**
 * Uplink messages and bytes forwarded, by rule and QoS, added up in plain numbers and handed to
 * the two counters when either is read: prom-client builds a string of the labels on every `inc`,
 * which at two calls per message was 1.5% of the bridge's CPU (docs/performance.md).
 */
class ForwardedTally {
  /** By rule: messages for QoS 0, 1, 2, then bytes for QoS 0, 1, 2, not yet in the counters. */
  private readonly rows = new Map<string, number[]>();

  add(rule: string, qos: 0 | 1 | 2, bytes: number): void {
    let row = this.rows.get(rule);
    if (!row) this.rows.set(rule, (row = [0, 0, 0, 0, 0, 0]));
    row[qos]! += 1;
    row[qos + 3]! += bytes;
  }

  flush(metrics: Pick<BridgeMetrics, 'uplinkMessages' | 'uplinkBytes'>): void {
    for (const [rule, row] of this.rows) {
      for (let qos = 0; qos < 3; qos++) {
        if (row[qos] === 0) continue;
        const labels = { rule, qos: String(qos) };
        metrics.uplinkMessages.inc(labels, row[qos]);
        metrics.uplinkBytes.inc(labels, row[qos + 3]);
        row[qos] = 0;
        row[qos + 3] = 0;
      }
    }
  }
}

/**
 * The bridge's metrics, in a registry of its own (no global state: two bridges in one process
 * count separately), with the default process metrics of prom-client beside them.
 */
export class BridgeMetrics {
  readonly registry = new Registry();
  private readonly forwarded = new ForwardedTally();
  readonly uplinkMessages = tallied(METRICS.uplinkMessages, this.registry, () => this.forwarded.flush(this));
  readonly uplinkBytes = tallied(METRICS.uplinkBytes, this.registry, () => this.forwarded.flush(this));
  readonly uplinkUnmatched = counter(METRICS.uplinkUnmatched, this.registry);
  readonly uplinkDropped = counter(METRICS.uplinkDropped, this.registry);
  readonly uplinkFailed = counter(METRICS.uplinkFailed, this.registry);
  readonly rateDelayed = counter(METRICS.uplinkRateDelayed, this.registry);
  readonly downlinkMessages = counter(METRICS.downlinkMessages, this.registry);
  readonly downlinkBytes = counter(METRICS.downlinkBytes, this.registry);
  readonly downlinkRejected = counter(METRICS.downlinkRejected, this.registry);
  readonly downlinkRequeued = counter(METRICS.downlinkRequeued, this.registry);
  readonly offlineDropped = counter(METRICS.offlineDropped, this.registry);
  readonly amqpReconnects = counter(METRICS.amqpReconnects, this.registry);
  readonly limitsRefused = counter(METRICS.limitsRefused, this.registry);
  readonly aclDenied = counter(METRICS.aclDenied, this.registry);
  readonly sessionsExpired = counter(METRICS.sessionsExpired, this.registry);
  readonly sessionsRefused = counter(METRICS.sessionsRefused, this.registry);
  readonly loginsRefused = counter(METRICS.loginsRefused, this.registry);
  readonly configReloads = counter(METRICS.configReloads, this.registry);
  readonly confirmLatency = new TalliedHistogram(
    METRIC_PREFIX + METRICS.confirmLatency.name,
    METRICS.confirmLatency.help,
    METRICS.confirmLatency.buckets,
    this.registry,
  );
  private readings: GaugeReadings | null = null;

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
    const reading = () => this.readings;
    const gauge = (definition: MetricDefinition, collect: (this: Gauge<string>, readings: GaugeReadings) => void) =>
      new Gauge({
        name: METRIC_PREFIX + definition.name,
        help: definition.help,
        labelNames: [...definition.labels],
        registers: [this.registry],
        collect() {
          const readings = reading();
          if (readings) collect.call(this, readings);
        },
      });
    gauge(METRICS.flowState, function (r) {
      for (const state of FLOW_STATE_LABELS) this.set({ state }, r.flowState() === state ? 1 : 0);
    });
    gauge(METRICS.flowPendingMessages, function (r) {
      this.set(r.flowPendingMessages());
    });
    gauge(METRICS.flowPendingBytes, function (r) {
      this.set(r.flowPendingBytes());
    });
    gauge(METRICS.flowWaiting, function (r) {
      this.set(r.flowWaiting());
    });
    gauge(METRICS.connections, function (r) {
      const counts = r.connections();
      for (const listener of LISTENER_LABELS) this.set({ listener }, counts[listener] ?? 0);
    });
    gauge(METRICS.bufferedBytes, function (r) {
      const held = r.bufferedBytes();
      this.set({ login: 'unauthenticated' }, held.unauthenticated);
      this.set({ login: 'authenticated' }, held.authenticated);
    });
    gauge(METRICS.amqpConnected, function (r) {
      this.set(r.amqpConnected() ? 1 : 0);
    });
    gauge(METRICS.amqpRefused, function (r) {
      const refused = r.amqpRefused();
      // One exchange may be refused to an uplink and a downlink rule alike: counted once.
      for (const kind of REFUSED_KIND_LABELS) this.set({ kind }, new Set(refused.filter((refusal) => refusal.kind === kind).map(({ name }) => name)).size);
    });
    gauge(METRICS.sessions, function (r) {
      const { connected, offline } = r.sessions();
      this.set({ state: 'connected' }, connected);
      this.set({ state: 'offline' }, offline);
    });
    gauge(METRICS.retainedMessages, function (r) {
      this.set(r.retained().messages);
    });
    gauge(METRICS.retainedBytes, function (r) {
      this.set(r.retained().bytes);
    });
    gauge(METRICS.mqttStateReady, function (r) {
      const shared = r.sharedState();
      this.set({ store: shared ? 'redis' : 'memory' }, shared && !shared.ready ? 0 : 1);
    });
    gauge(METRICS.clusterInstances, function (r) {
      this.set(r.sharedState()?.cluster?.instances ?? 0);
    });
    gauge(METRICS.clusterFilters, function (r) {
      const cluster = r.sharedState()?.cluster;
      this.set({ where: 'local' }, cluster?.localFilters ?? 0);
      this.set({ where: 'remote' }, cluster?.remoteFilters ?? 0);
    });
    // The emitter keeps running totals; the counters follow them at each scrape.
    const followed = (definition: MetricDefinition, series: (cluster: NonNullable<SharedStateReadings['cluster']>) => Record<string, number>) => {
      const label = definition.labels[0]!;
      const seen = new Map<string, number>();
      new Counter({
        name: METRIC_PREFIX + definition.name,
        help: definition.help,
        labelNames: [label],
        registers: [this.registry],
        collect() {
          const cluster = reading()?.sharedState()?.cluster;
          if (!cluster) return;
          for (const [value, total] of Object.entries(series(cluster))) {
            const grown = total - (seen.get(value) ?? 0);
            if (grown > 0) this.inc({ [label]: value }, grown);
            else if (!seen.has(value)) this.inc({ [label]: value }, 0);
            seen.set(value, Math.max(total, seen.get(value) ?? 0));
          }
        },
      });
    };
    followed(METRICS.clusterMessages, (cluster) => ({ sent: cluster.sent, received: cluster.received }));
    followed(METRICS.clusterMessagesLost, (cluster) => ({
      send_failed: cluster.sendFailed,
      unreceived: cluster.unreceived,
      receive_backlog: cluster.receivedDropped,
      malformed: cluster.malformed,
    }));
  }

  /** One uplink message forwarded (confirmed) by a rule: counted in uplink_messages_total and uplink_bytes_total. */
  uplinkForwarded(rule: string, qos: 0 | 1 | 2, bytes: number): void {
    this.forwarded.add(rule, qos, bytes);
  }

  /** Where the gauges read from (the bridge sets it once its parts exist). */
  observe(readings: GaugeReadings): void {
    this.readings = readings;
  }

  /** Every counter of the bridge with its values by label set, for the summary logged at shutdown. */
  async totals(): Promise<Record<string, number | Record<string, number>>> {
    const totals: Record<string, number | Record<string, number>> = {};
    for (const metric of await this.registry.getMetricsAsJSON()) {
      if (String(metric.type) !== 'counter' || !metric.name.startsWith(METRIC_PREFIX)) continue;
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

  /** The current value of a counter or gauge (summed over the given labels), for tests and the CLI. */
  async value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) throw new BridgeError('BRIDGE_ERR_INTERNAL', `no metric ${name}`);
    const { values } = await metric.get();
    return values
      .filter((value) => Object.entries(labels).every(([key, wanted]) => String((value.labels as Record<string, unknown>)[key]) === wanted))
      .reduce((sum, value) => sum + value.value, 0);
  }
}
