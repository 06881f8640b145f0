import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import type { Logger } from 'pino';
import { createBridge, type Bridge } from '../../src/bridge.js';
import type { BridgeParts } from '../../src/bridge-parts.js';
import { configSchema, type BridgeConfig, type BridgeConfigInput } from '../../src/config/schema.js';
import { silentLogger } from '../../src/observability/logger.js';
import { AMQP_URL, uniqueName } from './amqp.js';
import { deleteKeys, redisPersistence } from './redis.js';

export type Transport = 'tcp' | 'ws';
export const TRANSPORTS: readonly Transport[] = ['tcp', 'ws'];

/** A tcp and a ws listener on free ports: what a test bridge gets unless `mqtt.listeners` says otherwise. */
const TEST_LISTENERS = [
  { type: 'tcp', host: '127.0.0.1', port: 0 },
  { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
] as const;

/** A topic exchange the bridge declares and the test deletes afterwards. */
export function transientExchange(name: string) {
  return { name, type: 'topic', durable: false, autoDelete: false } as const;
}

/** The part of a configuration that forwards every device publish to `exchange`, topic `a/b` as routing key `a.b`. */
export function forwardAllTo(exchange: string) {
  return {
    amqp: { exchanges: [transientExchange(exchange)] },
    uplink: [{ name: 'all', topic: '#', exchange, routingKey: '{#}' }],
  };
}

export interface TestBridge {
  bridge: Bridge;
  config: BridgeConfig;
  url(transport: Transport): string;
  stop(): Promise<void>;
}

/**
 * The MQTT state the integration tests run on: `memory`, or with BRIDGE_TEST_PERSISTENCE=redis
 * Redis (REDIS_URL, by default the machine's), each test bridge under a key prefix of its own.
 */
export const TEST_PERSISTENCE: 'memory' | 'redis' = process.env.BRIDGE_TEST_PERSISTENCE === 'redis' ? 'redis' : 'memory';

/**
 * Starts a bridge on free ports (tcp and ws unless `mqtt.listeners` is given) against the real
 * RabbitMQ and waits until it is connected. With BRIDGE_TEST_PERSISTENCE=redis and no
 * `mqtt.persistence` (or `sessionFile`) given, its state is in Redis under a key prefix of its
 * own, deleted when it stops.
 */
export async function startTestBridge(
  input: Omit<BridgeConfigInput, 'mqtt'> & { mqtt?: BridgeConfigInput['mqtt'] },
  options: { logger?: Logger; waitForReady?: boolean; parts?: BridgeParts } = {},
): Promise<TestBridge> {
  const onRedis = TEST_PERSISTENCE === 'redis' && input.mqtt?.persistence === undefined && input.mqtt?.sessionFile === undefined;
  const persistence = onRedis ? redisPersistence(`${uniqueName('test-bridge')}:`) : undefined;
  const config = configSchema.parse({
    ...input,
    mqtt: { listeners: TEST_LISTENERS, ...input.mqtt, ...(persistence ? { persistence } : {}) },
    amqp: { url: AMQP_URL, ...input.amqp },
    http: { host: '127.0.0.1', port: 0, ...input.http },
  }) as BridgeConfig;
  const bridge = createBridge({ config, logger: options.logger ?? silentLogger(), ...(options.parts ? { parts: options.parts } : {}) });
  await bridge.start();
  if (options.waitForReady !== false) await bridge.ready();
  return {
    bridge,
    config,
    url(transport) {
      const listener = bridge.listeners.find((candidate) => candidate.type === transport);
      if (!listener) throw new Error(`no ${transport} listener`);
      return transport === 'tcp' ? `mqtt://127.0.0.1:${listener.port}` : `ws://127.0.0.1:${listener.port}/mqtt`;
    },
    stop: async () => {
      await bridge.stop();
      if (persistence) await deleteKeys(persistence.keyPrefix, persistence.url);
    },
  };
}

/** A real MQTT 3.1.1 client that does not reconnect by itself. */
export function connectClient(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000, ...options });
}
