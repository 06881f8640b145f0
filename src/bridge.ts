import type { Logger } from 'pino';
import { AmqpBackend } from './amqp/backend.js';
import type { BridgeConfig } from './config/schema.js';
import { UplinkResolver } from './mapping/uplink.js';
import type { RunningListener } from './mqtt/listeners/listener.js';
import { MqttServer } from './mqtt/server.js';
import { BridgeMetrics } from './observability/metrics.js';
import { silentLogger } from './observability/logger.js';
import { UplinkPipeline } from './pipeline/uplink.js';
import type { BrokerState } from './ports.js';

export interface BridgeOptions {
  config: BridgeConfig;
  logger?: Logger;
}

export interface Bridge {
  /** Starts the listeners and begins connecting to RabbitMQ (in the background). */
  start(): Promise<void>;
  /** Resolves once RabbitMQ is connected and the exchanges are declared. */
  ready(): Promise<void>;
  /** Stops accepting, waits (up to `shutdownTimeoutMs`) for unconfirmed publishes, closes everything. */
  stop(): Promise<void>;
  readonly listeners: readonly RunningListener[];
  readonly metrics: BridgeMetrics;
  readonly amqpState: BrokerState;
  /** Messages accepted from devices and not yet confirmed by RabbitMQ. */
  readonly pendingMessages: number;
}

/** The composition root: builds every part, wires them, and owns the start and stop order. */
export function createBridge(options: BridgeOptions): Bridge {
  const { config } = options;
  const logger = options.logger ?? silentLogger();
  const metrics = new BridgeMetrics();
  const resolver = new UplinkResolver(config.uplink);
  const amqp = new AmqpBackend({ config: config.amqp, ruleExchanges: resolver.literalExchanges(), logger: logger.child({ part: 'amqp' }) });
  const uplink = new UplinkPipeline({ resolver: () => resolver, publisher: amqp.publisher, metrics, logger: logger.child({ part: 'uplink' }) });
  let mqtt: MqttServer | null = null;
  let state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';

  return {
    get listeners() {
      return mqtt?.listeners ?? [];
    },
    metrics,
    get amqpState() {
      return amqp.state;
    },
    get pendingMessages() {
      return amqp.publisher.pendingMessages;
    },

    async start() {
      if (state !== 'new') throw new Error(`bridge cannot start: it is ${state}`);
      state = 'starting';
      await amqp.start();
      mqtt = await MqttServer.create({ config: config.mqtt, handler: uplink, logger: logger.child({ part: 'mqtt' }) });
      try {
        await mqtt.listen(config.mqtt.listeners);
      } catch (error) {
        await mqtt.close();
        await amqp.close(0);
        state = 'stopped';
        throw error;
      }
      for (const listener of mqtt.listeners) logger.info({ listener: listener.type, address: listener.url }, `MQTT listening on ${listener.url}`);
      logger.info({ amqp: amqp.server, rules: { uplink: config.uplink.length, downlink: config.downlink.length } }, `forwarding to AMQP at ${amqp.server}`);
      state = 'running';
    },

    ready() {
      return amqp.waitForConnect();
    },

    async stop() {
      if (state === 'stopping' || state === 'stopped') return;
      state = 'stopping';
      const pending = amqp.publisher.pendingMessages;
      logger.info({ pending, timeoutMs: config.shutdownTimeoutMs }, 'shutting down: no new connections, waiting for unconfirmed publishes');
      if (mqtt) {
        await mqtt.stopAccepting();
        mqtt.pauseClients();
      }
      await amqp.publisher.close(config.shutdownTimeoutMs);
      if (mqtt) await mqtt.close();
      await amqp.close(0);
      state = 'stopped';
      logger.info('stopped');
    },
  };
}
