import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BridgeConfig } from '../config/schema.js';
import type { QueueCheck } from './hooks/authorize-forward.js';
import { MemoryRetainedLedger, type RetainedLedger } from './retained-ledger.js';
import { RetainedQuota } from './retained-quota.js';
import { MemorySessionRegistry } from './session-registry.js';
import { createSessionStore, type MemorySessionStore, type SessionStore } from './session-store.js';
import { createRedisState, type RedisMqttState } from './redis/state.js';

/** Whether the state can serve now, and why not. */
export interface StateHealth {
  readonly ready: boolean;
  readonly reason?: string;
}

export interface MqttStateBase {
  /** aedes' persistence and the session registry. */
  readonly store: SessionStore;
  readonly retainedLedger: RetainedLedger;
  /** The retained limits over that ledger (what the hooks and the store use). */
  readonly retained: RetainedQuota;
  /** The id aedes runs under (its broker id): wills and connections in a shared state are recorded under it. */
  readonly brokerId: string;
  health(): StateHealth;
  /** After aedes has closed: records the stop (a shared state) and closes its connections. */
  close(): Promise<void>;
}

export interface MemoryMqttState extends MqttStateBase {
  readonly kind: 'memory';
  readonly store: MemorySessionStore;
  readonly retainedLedger: MemoryRetainedLedger;
}

export type MqttState = MemoryMqttState | RedisMqttState;

export interface MqttStateOptions {
  readonly config: BridgeConfig['mqtt'];
  readonly logger: Logger;
  /** Called when an offline session's queue was full and its oldest message was dropped. */
  readonly onDropped: (clientId: string) => void;
  /** Called when a QoS 2 PUBLISH is refused because its session holds that much QoS 2 state. */
  readonly onQos2Refused: (clientId: string, heldBytes: number) => void;
  /** The ACL's check of what may be queued for an offline session; everything when absent. */
  readonly mayQueue?: QueueCheck;
  /** A shared state found this instance presumed dead by the others: its connections must close (see RedisStateOptions). */
  readonly onCondemned: () => void;
}

/**
 * The MQTT state as `mqtt.persistence` says: in this process (`memory`, with `sessionFile`), or
 * in Redis (`redis`: durable, and shared by every bridge on it).
 */
export async function createMqttState(options: MqttStateOptions): Promise<MqttState> {
  const { config } = options;
  const session = {
    maxOfflineMessages: config.maxOfflineMessages,
    onDropped: options.onDropped,
    maxPendingQos2BytesPerSession: config.maxPendingQos2BytesPerSession,
    onQos2Refused: options.onQos2Refused,
    mayQueue: options.mayQueue,
  };
  if (config.persistence.type === 'redis') {
    return createRedisState({ settings: config.persistence, limits: config, session, logger: options.logger, onCondemned: options.onCondemned });
  }
  const retainedLedger = new MemoryRetainedLedger(config);
  const retained = new RetainedQuota(retainedLedger);
  const store = createSessionStore({ ...session, retained, retainedOwnerOf: (topic) => retainedLedger.ownerOf(topic) }, new MemorySessionRegistry());
  return {
    kind: 'memory',
    store,
    retainedLedger,
    retained,
    brokerId: randomUUID(),
    health: () => ({ ready: true }),
    close: async () => {},
  };
}
