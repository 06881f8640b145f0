import { AmqpBackend, type AmqpBackendOptions, type UplinkExchange } from './amqp/backend.js';
import { Amqp10Backend } from './amqp10/backend.js';
import type { DownlinkSubscription } from './amqp/downlink-consumers.js';
import type { ConfigLocator } from './config/load.js';
import type { BridgeConfig, ListenerConfig } from './config/schema.js';
import type { RunningListener } from './mqtt/listeners/listener.js';
import type { RetainedUsage } from './mqtt/retained-ledger.js';
import { MqttServer, type MqttServerOptions, type SharedStateReadings } from './mqtt/server.js';
import type { SessionCounts } from './mqtt/session-registry.js';
import { startHttpServer, type HttpServerOptions, type RunningHttpServer } from './observability/http-server.js';
import type { BrokerRefusal, BrokerState, DevicePublisher, MessagePublisher } from './ports.js';

/** The MQTT side as the bridge drives it (MqttServer; a fake in the lifecycle tests). */
export interface MqttSide extends DevicePublisher {
  readonly listeners: readonly RunningListener[];
  /** Starts every listener; if one cannot bind, the others are stopped and the error thrown. */
  listen(listeners: readonly ListenerConfig[]): Promise<readonly RunningListener[]>;
  stopAccepting(): Promise<void>;
  pauseClients(): void;
  /** Disconnects every client and stops; saves the sessions when configured to. */
  close(): Promise<void>;
  /** Re-reads the TLS listeners' certificates; throws (changing nothing more) if one cannot be read. */
  reloadCertificates(): number;
  connectionsByListener(): Record<string, number>;
  bufferedBytes(): { readonly unauthenticated: number; readonly authenticated: number };
  sessionCounts(): SessionCounts;
  retainedUsage(): RetainedUsage;
  /** Why it cannot serve as configured now (Redis, the routing between instances); empty when it can. */
  unreadyReasons(): readonly string[];
  /** Redis and the routing between instances, for the metrics; null with `mqtt.persistence.type: memory`. */
  sharedState(): SharedStateReadings | null;
}

/** The broker side as the bridge drives it (AmqpBackend for AMQP 0-9-1, Amqp10Backend for 1.0; a fake in the lifecycle tests). */
export interface BrokerSide {
  readonly publisher: MessagePublisher;
  readonly state: BrokerState;
  /** Where it connects, with no credentials in it (for logs). */
  readonly server: string;
  on(event: 'state', listener: (state: BrokerState) => void): unknown;
  on(event: 'blocked', listener: (blocked: boolean) => void): unknown;
  /** Starts connecting in the background. */
  start(): Promise<void>;
  /** Resolves once the first connection is up. */
  waitForConnect(): Promise<void>;
  /** A reload: the exchanges to declare, each uplink rule's exchange, and where the new configuration's entries are. */
  reconfigureExchanges(exchanges: BridgeConfig['amqp']['exchanges'], uplinkExchanges: readonly UplinkExchange[], locate?: ConfigLocator): Promise<void>;
  /** A reload: the downlink consumers follow the new rules. */
  reconfigureDownlink(downlink: readonly DownlinkSubscription[]): Promise<void>;
  /** The exchanges and queues the broker refuses now (what needs them waits; the rest flows). */
  refused(): BrokerRefusal[];
  /** No new deliveries; waits up to `timeoutMs` for those being handled. */
  stopConsuming(timeoutMs: number): Promise<void>;
  close(timeoutMs: number): Promise<void>;
}

/** How the bridge makes its parts; tests give fakes. */
export interface BridgeParts {
  createMqtt(options: MqttServerOptions): Promise<MqttSide>;
  createBroker(options: AmqpBackendOptions): BrokerSide;
  startHttp(options: HttpServerOptions): Promise<RunningHttpServer>;
}

export const REAL_PARTS: BridgeParts = {
  createMqtt: (options) => MqttServer.create(options),
  createBroker: (options) => (options.config.protocol === '1.0' ? new Amqp10Backend(options) : new AmqpBackend(options)),
  startHttp: (options) => startHttpServer(options),
};
