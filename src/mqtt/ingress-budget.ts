import { SMALL_HOLD_BYTES, UNAUTHENTICATED_SHARES_PER_ADDRESS } from '../config/schema.js';
import { MQTT_MAX_FIXED_HEADER_BYTES } from '../protocol/mqtt.js';
import type { LimitName } from './limits.js';

/**
 * The bytes the bridge holds for what connections sent but the MQTT side has not taken yet: a
 * packet (or, over WebSocket, a message) whose header has arrived and its body not all of it,
 * and everything a connection sent before its login succeeded. aedes and ws buffer such bytes until
 * the packet or message is complete, so a client that announces a big one and never finishes
 * it holds memory; these budgets bound that memory per connection, per source address, before
 * login and in all. They are fed by the framing guards (PacketSizeGuard, WebSocketFrameGuard)
 * once per chunk read, never per packet.
 */
export interface IngressLimits {
  /** The largest CONNECT (remaining length); everything sent before the login succeeds must fit in one. */
  readonly maxConnectBytes: number;
  /** Bytes held by all connections not yet authenticated; one address may hold a quarter of it. */
  readonly maxUnauthenticatedBytes: number;
  /** Bytes held by all connections. */
  readonly maxBufferedBytes: number;
  /** Bytes held by the connections of one source address; 0: no limit. */
  readonly maxBufferedBytesPerAddress: number;
  /** Connections open at once from one source address; 0: no limit. */
  readonly maxConnectionsPerAddress: number;
  /** How long a packet (or WebSocket message) may take from its first byte to its last. */
  readonly packetTimeoutMs: number;
}

/** The sweep that closes connections whose packet takes too long runs at most this often... */
const MIN_SWEEP_INTERVAL_MS = 10;
/** ...and at least this often. */
const MAX_SWEEP_INTERVAL_MS = 1_000;

/** Where a framing guard stands after the last chunk it read. */
export interface FramingProgress {
  /** Bytes from the start of the stream to the end of the unit being read (to the last byte read between units). */
  readonly pendingEnd: number;
  /** The announced size of the unit not complete yet (what is read of its header while that is incomplete); 0 between units. */
  readonly incompleteBytes: number;
  /** Whether the unit not complete yet began in the last chunk. */
  readonly incompleteStartedInLastChunk: boolean;
}

/** What one framing layer of a connection (MQTT packets, WebSocket frames) holds. */
export class HeldBytes {
  /** Before login: all the layer received, and the rest of the unit being read. */
  beforeLogin = 0;
  /** The announced size of the unit not complete yet; 0 when none. */
  incomplete = 0;
  /** When the unit not complete yet began (ms); 0 when none. */
  since = 0;
}

interface AddressUsage {
  readonly key: string;
  connections: number;
  bytes: number;
  unauthenticatedBytes: number;
}

export type Refuse = (limit: LimitName, detail: string) => void;

/** One connection's share of the budgets. */
export class IngressConnection {
  authenticated = false;
  closed = false;
  /** What the MQTT parser holds. */
  readonly packets = new HeldBytes();
  /** What the WebSocket library holds (WebSocket listeners only). */
  readonly frames = new HeldBytes();
  /** What is charged to the budgets now. */
  charged = 0;

  constructor(
    private readonly budget: IngressBudget,
    readonly usage: AddressUsage,
    /** Counts, logs and closes the connection. */
    readonly refuse: Refuse,
  ) {}

  /**
   * After a framing guard read a chunk: charges what the layer holds now. Returns true when the
   * connection may go on; otherwise it has been refused (counted, logged, closed).
   */
  follow(layer: HeldBytes, progress: FramingProgress): boolean {
    const incomplete = progress.incompleteBytes;
    if (this.authenticated) {
      // The hot path: the chunk ended between packets as the last one did, or inside the same packet.
      if (incomplete === layer.incomplete && (incomplete === 0 || !progress.incompleteStartedInLastChunk)) return true;
    } else {
      const bound = this.budget.limits.maxConnectBytes + MQTT_MAX_FIXED_HEADER_BYTES;
      if (progress.pendingEnd > bound) {
        this.refuse('connect_size', `${progress.pendingEnd} bytes before login (at most a CONNECT of ${this.budget.limits.maxConnectBytes})`);
        return false;
      }
      layer.beforeLogin = progress.pendingEnd;
    }
    if (incomplete === 0) layer.since = 0;
    else if (layer.since === 0 || progress.incompleteStartedInLastChunk) layer.since = this.budget.now();
    layer.incomplete = incomplete;
    return this.budget.recharge(this);
  }

  /** What the connection holds now: before login everything it sent, after it only its incomplete packet or message. */
  held(): number {
    return this.authenticated ? this.packets.incomplete + this.frames.incomplete : Math.max(this.packets.beforeLogin, this.frames.beforeLogin);
  }

  /** Logged in: from now on only incomplete packets and messages are charged. */
  authenticate(): void {
    if (this.authenticated || this.closed) return;
    this.budget.chargeAsAuthenticated(this);
  }

  /** The connection closed: its share is released. */
  close(): void {
    if (this.closed) return;
    this.budget.release(this);
  }

  /** When its oldest incomplete unit began (ms), or 0. */
  incompleteSince(): number {
    const { since: a } = this.packets;
    const { since: b } = this.frames;
    return a === 0 ? b : b === 0 ? a : Math.min(a, b);
  }
}

export interface IngressBudgetOptions {
  limits: IngressLimits;
  now?: () => number;
}

/** The shared budgets: per source address, before login, and in all; and the packet timeout. */
export class IngressBudget {
  readonly limits: IngressLimits;
  readonly now: () => number;
  private readonly addresses = new Map<string, AddressUsage>();
  private readonly open = new Set<IngressConnection>();
  /** The connection of each client (an aedes client, say), for loggedIn(). */
  private readonly byOwner = new WeakMap<object, IngressConnection>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private totalBytes = 0;
  private unauthenticatedBytes = 0;

  constructor(options: IngressBudgetOptions) {
    this.limits = options.limits;
    this.now = options.now ?? Date.now;
  }

  /** A new connection from `address`: its share of the budgets, or the limit that refuses it. */
  admit(address: string, refuse: Refuse): IngressConnection | LimitName {
    const key = addressKey(address);
    let usage = this.addresses.get(key);
    const max = this.limits.maxConnectionsPerAddress;
    if (usage && max > 0 && usage.connections >= max) return 'connections_per_address';
    if (!usage) {
      usage = { key, connections: 0, bytes: 0, unauthenticatedBytes: 0 };
      this.addresses.set(key, usage);
    }
    usage.connections++;
    const connection = new IngressConnection(this, usage, refuse);
    this.open.add(connection);
    this.startSweeping();
    return connection;
  }

  /** Remembers whose connection this is, so that loggedIn(owner) finds it. */
  bind(owner: object, connection: IngressConnection): void {
    this.byOwner.set(owner, connection);
  }

  /** The owner's login succeeded: its connection is charged as authenticated from now on. */
  loggedIn(owner: object): void {
    this.byOwner.get(owner)?.authenticate();
  }

  /** Charges what `connection` holds now; refuses it (and returns false) if that breaks a budget. */
  recharge(connection: IngressConnection): boolean {
    const held = connection.held();
    const delta = held - connection.charged;
    const usage = connection.usage;
    if (delta > 0 && held > SMALL_HOLD_BYTES) {
      const broken = this.brokenBy(connection, delta);
      if (broken) {
        connection.refuse(broken.limit, broken.detail);
        return false;
      }
    }
    usage.bytes += delta;
    this.totalBytes += delta;
    if (!connection.authenticated) {
      usage.unauthenticatedBytes += delta;
      this.unauthenticatedBytes += delta;
    }
    connection.charged = held;
    return true;
  }

  private brokenBy(connection: IngressConnection, delta: number): { limit: LimitName; detail: string } | null {
    const { maxBufferedBytesPerAddress, maxUnauthenticatedBytes, maxBufferedBytes } = this.limits;
    const usage = connection.usage;
    const wanted = `${connection.held()} bytes held by one connection`;
    if (maxBufferedBytesPerAddress > 0 && usage.bytes + delta > maxBufferedBytesPerAddress) {
      return { limit: 'buffered_bytes_per_address', detail: `${wanted}; ${usage.bytes} already held for ${usage.key}` };
    }
    if (!connection.authenticated) {
      if (usage.unauthenticatedBytes + delta > maxUnauthenticatedBytes / UNAUTHENTICATED_SHARES_PER_ADDRESS) {
        return { limit: 'unauthenticated_bytes', detail: `${wanted}; ${usage.unauthenticatedBytes} already held before login for ${usage.key}` };
      }
      if (this.unauthenticatedBytes + delta > maxUnauthenticatedBytes) {
        return { limit: 'unauthenticated_bytes', detail: `${wanted}; ${this.unauthenticatedBytes} already held before login` };
      }
    }
    if (this.totalBytes + delta > maxBufferedBytes) return { limit: 'buffered_bytes', detail: `${wanted}; ${this.totalBytes} already held` };
    return null;
  }

  chargeAsAuthenticated(connection: IngressConnection): void {
    const usage = connection.usage;
    usage.unauthenticatedBytes -= connection.charged;
    this.unauthenticatedBytes -= connection.charged;
    connection.authenticated = true;
    // What it holds now (an incomplete packet or message) was part of what it held before: never more.
    const held = connection.held();
    usage.bytes += held - connection.charged;
    this.totalBytes += held - connection.charged;
    connection.charged = held;
  }

  release(connection: IngressConnection): void {
    connection.closed = true;
    this.open.delete(connection);
    const usage = connection.usage;
    usage.bytes -= connection.charged;
    this.totalBytes -= connection.charged;
    if (!connection.authenticated) {
      usage.unauthenticatedBytes -= connection.charged;
      this.unauthenticatedBytes -= connection.charged;
    }
    connection.charged = 0;
    usage.connections--;
    if (usage.connections === 0) this.addresses.delete(usage.key);
  }

  /** Closes every connection whose incomplete packet or message began more than packetTimeoutMs ago. */
  sweep(): void {
    const timeout = this.limits.packetTimeoutMs;
    const now = this.now();
    for (const connection of this.open) {
      const since = connection.incompleteSince();
      if (since !== 0 && now - since >= timeout) {
        connection.refuse('packet_timeout', `a packet incomplete after ${now - since} ms`);
        // However the refusal closes it, it no longer counts.
        connection.close();
      }
    }
  }

  /** Stops the sweep (the server is closing). */
  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  /** The bytes held now: in all, by connections not yet logged in, and for one address. */
  usage(address?: string): { total: number; unauthenticated: number; address: { connections: number; bytes: number } | null } {
    const entry = address === undefined ? undefined : this.addresses.get(addressKey(address));
    return {
      total: this.totalBytes,
      unauthenticated: this.unauthenticatedBytes,
      address: entry ? { connections: entry.connections, bytes: entry.bytes } : null,
    };
  }

  private startSweeping(): void {
    if (this.sweepTimer) return;
    const interval = Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(MIN_SWEEP_INTERVAL_MS, Math.floor(this.limits.packetTimeoutMs / 10)));
    this.sweepTimer = setInterval(() => this.sweep(), interval);
    this.sweepTimer.unref();
  }
}

/**
 * The "source address" the per-address limits count by: an IPv4 address (also when written as
 * an IPv4-mapped IPv6 address), or the /64 prefix of an IPv6 address, since one host or one LAN
 * holds a whole /64 and could otherwise take a fresh address for every connection.
 */
export function addressKey(address: string): string {
  const plain = address.split('%')[0]!; // a zone index (fe80::1%eth0) is not part of the address
  if (!plain.includes(':')) return plain;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped) return mapped[1]!;
  const [head = '', tail] = plain.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // A trailing dotted IPv4 part stands for two groups.
  const groupsIn = (parts: string[]) => parts.reduce((sum, part) => sum + (part.includes('.') ? 2 : 1), 0);
  const zeros = tail === undefined ? [] : Array<string>(Math.max(0, 8 - groupsIn(left) - groupsIn(right))).fill('0');
  const groups = [...left, ...zeros, ...right];
  const prefix = groups.slice(0, 4).map((group) => (group.includes('.') ? group : (Number.parseInt(group, 16) || 0).toString(16)));
  return `${prefix.join(':')}::/64`;
}
