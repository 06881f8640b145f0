/**
 * Who a client id belongs to. A session and its live connection belong to the identity that
 * created them (the username, which a verified certificate may have given, or "anonymous");
 * a CONNECT from another identity with that client id takes over, resumes and wipes nothing.
 * The registry also knows which persistent sessions are offline since when (for their expiry)
 * and how many each identity holds (for its cap).
 *
 * Two implementations: `MemorySessionRegistry` (one process) and `RedisSessionRegistry`
 * (src/mqtt/redis/session-registry.ts, shared by every bridge on one Redis).
 */

/** An identity as sessions are owned by it. */
export type SessionOwner = string;

export const ANONYMOUS_OWNER: SessionOwner = 'anonymous';

const USER_PREFIX = 'user:';

export function ownerOf(username: string | undefined): SessionOwner {
  return username === undefined ? ANONYMOUS_OWNER : `${USER_PREFIX}${username}`;
}

/** The username of an owner (undefined for anonymous): what `ownerOf` was given. */
export function usernameOfOwner(owner: SessionOwner): string | undefined {
  return owner === ANONYMOUS_OWNER ? undefined : owner.slice(USER_PREFIX.length);
}

export interface ClaimRequest {
  readonly clientId: string;
  readonly owner: SessionOwner;
  /** The CONNECT asked for a persistent session (clean session = 0). */
  readonly persistent: boolean;
  /** Most persistent sessions the owner may hold. */
  readonly maxPersistentSessions: number;
}

export type ClaimResult =
  /** `claim` identifies this connection's hold on the client id, for `release`. */
  | { readonly ok: true; readonly claim: number }
  | { readonly ok: false; readonly reason: 'owned_by_another' | 'sessions_per_user' };

/** A persistent session as a snapshot keeps it. */
export interface SessionRecordSnapshot {
  readonly clientId: string;
  /** Null for a session restored from a snapshot that did not record its owner: the first identity to connect takes it. */
  readonly owner: SessionOwner | null;
  /** When its client left (ms since the epoch). */
  readonly offlineSince: number;
}

/** Who holds a client id, and whether a connection has it now. */
export interface SessionHolder {
  /** Null for a session restored from a snapshot that did not record its owner. */
  readonly owner: SessionOwner | null;
  readonly connected: boolean;
}

export interface SessionCounts {
  /** Client ids connected now (clean or persistent). */
  readonly connected: number;
  /** Persistent sessions whose client is away. */
  readonly offline: number;
}

/**
 * Who holds each client id. The calls that may reach another process (a registry shared by
 * several bridge instances, in Redis) return promises; `release` and `counts` never wait.
 */
export interface SessionRegistry {
  /** Takes the client id for a connection that passed authentication, unless another identity holds it or the owner is at its cap. */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /**
   * The connection that made `claim` has closed: a clean session ends, a persistent one goes
   * offline. Changes nothing when a newer connection holds the id; never fails (a registry that
   * cannot record it now keeps trying).
   */
  release(clientId: string, claim: number): void;
  /** Persistent sessions offline since `offlineBefore` or earlier, oldest first. */
  offlineSince(offlineBefore: number): Promise<string[]>;
  /** Forgets an offline session (it expired); false, changing nothing, when a connection holds the id now or another sweep forgot it first. */
  forget(clientId: string): Promise<boolean>;
  /** Who holds each of these client ids (a connection, or a persistent session); absent when nobody does. */
  holders(clientIds: readonly string[]): Promise<Map<string, SessionHolder>>;
  /** The counts as this instance knows them now. */
  counts(): SessionCounts;
}

interface SessionRecord {
  owner: SessionOwner | null;
  persistent: boolean;
  /** The claim of the connection holding the id now, or null while the session is offline. */
  connection: number | null;
  offlineSince: number;
}

/** The registry of one bridge process; it also saves to and restores from the session file. */
export class MemorySessionRegistry implements SessionRegistry {
  private readonly records = new Map<string, SessionRecord>();
  /** Persistent sessions per owner. */
  private readonly persistentByOwner = new Map<SessionOwner, number>();
  private lastClaim = 0;
  private connected = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const record = this.records.get(request.clientId);
    if (record && record.owner !== null && record.owner !== request.owner) return { ok: false, reason: 'owned_by_another' };
    const alreadyPersistent = record?.persistent === true && record.owner === request.owner;
    if (request.persistent && !alreadyPersistent && (this.persistentByOwner.get(request.owner) ?? 0) >= request.maxPersistentSessions) {
      return { ok: false, reason: 'sessions_per_user' };
    }
    const claim = ++this.lastClaim;
    if (record) {
      this.setPersistent(record, false);
      if (record.connection === null) this.connected++;
      record.owner = request.owner;
      record.connection = claim;
      this.setPersistent(record, request.persistent);
    } else {
      const created: SessionRecord = { owner: request.owner, persistent: false, connection: claim, offlineSince: 0 };
      this.records.set(request.clientId, created);
      this.connected++;
      this.setPersistent(created, request.persistent);
    }
    return { ok: true, claim };
  }

  release(clientId: string, claim: number): void {
    const record = this.records.get(clientId);
    if (!record || record.connection !== claim) return; // a newer connection holds the id
    record.connection = null;
    this.connected--;
    if (record.persistent) record.offlineSince = this.now();
    else this.records.delete(clientId);
  }

  async offlineSince(offlineBefore: number): Promise<string[]> {
    const found: Array<[string, number]> = [];
    for (const [clientId, record] of this.records) {
      if (record.connection === null && record.offlineSince <= offlineBefore) found.push([clientId, record.offlineSince]);
    }
    return found.sort((a, b) => a[1] - b[1]).map(([clientId]) => clientId);
  }

  async forget(clientId: string): Promise<boolean> {
    const record = this.records.get(clientId);
    if (!record || record.connection !== null) return false;
    this.setPersistent(record, false);
    this.records.delete(clientId);
    return true;
  }

  /** Who holds the client id (a connection, or a persistent session), or undefined when nobody does. */
  holder(clientId: string): SessionHolder | undefined {
    const record = this.records.get(clientId);
    return record && { owner: record.owner, connected: record.connection !== null };
  }

  async holders(clientIds: readonly string[]): Promise<Map<string, SessionHolder>> {
    const found = new Map<string, SessionHolder>();
    for (const clientId of clientIds) {
      const holder = this.holder(clientId);
      if (holder) found.set(clientId, holder);
    }
    return found;
  }

  counts(): SessionCounts {
    let offline = 0;
    for (const record of this.records.values()) if (record.connection === null) offline++;
    return { connected: this.connected, offline };
  }

  /** The persistent sessions, for the session file. */
  persistentSessions(): SessionRecordSnapshot[] {
    const now = this.now();
    return [...this.records]
      .filter(([, record]) => record.persistent)
      .map(([clientId, record]) => ({ clientId, owner: record.owner, offlineSince: record.connection === null ? record.offlineSince : now }));
  }

  /** Puts back persistent sessions read from the session file. */
  restore(sessions: readonly SessionRecordSnapshot[]): void {
    for (const session of sessions) {
      if (this.records.has(session.clientId)) continue;
      const record: SessionRecord = { owner: session.owner, persistent: false, connection: null, offlineSince: session.offlineSince };
      this.records.set(session.clientId, record);
      this.setPersistent(record, true);
    }
  }

  /** Keeps the per-owner count of persistent sessions in step. */
  private setPersistent(record: SessionRecord, persistent: boolean): void {
    if (record.persistent === persistent) return;
    record.persistent = persistent;
    if (record.owner === null) return;
    const count = (this.persistentByOwner.get(record.owner) ?? 0) + (persistent ? 1 : -1);
    if (count === 0) this.persistentByOwner.delete(record.owner);
    else this.persistentByOwner.set(record.owner, count);
  }
}
