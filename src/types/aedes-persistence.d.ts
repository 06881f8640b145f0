// The in-memory persistence that aedes uses by default, in its promise form.
declare module 'aedes-persistence/asyncPersistence.js' {
  export default class AsyncMemoryPersistence {
    constructor(options?: Record<string, unknown>);
    setup(broker: unknown): Promise<void>;
  }
}

declare module 'aedes-packet' {
  import type { Packet as MqttPacket } from 'mqtt-packet';
  interface PacketFields {
    cmd?: string;
    brokerId?: string;
    brokerCounter?: number;
    messageId?: number;
    topic?: string;
    payload?: Buffer | string;
    qos?: number;
    retain?: boolean;
    dup?: boolean;
  }
  class Packet {
    constructor(original: PacketFields, broker?: unknown);
    cmd: string;
    brokerId: string;
    brokerCounter: number;
    messageId: number | undefined;
    topic: string;
    payload: Buffer;
    qos: number;
    retain: boolean;
    dup: boolean;
  }
  namespace Packet {
    /** What aedes' own types import from here (its published packets). */
    type AedesPacket = MqttPacket & { brokerId: string; brokerCounter: number; messageExpiry?: number };
  }
  export = Packet;
}

// aedes-persistence-redis' persistence in its promise form (what aedes 1.2 takes); reached only
// through src/mqtt/redis/persistence-redis-internals.ts.
declare module 'aedes-persistence-redis/asyncPersistence.js' {
  export default class AsyncRedisPersistence {
    constructor(options?: Record<string, unknown>);
    setup(broker: unknown): Promise<void>;
  }
}
