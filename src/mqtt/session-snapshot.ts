import { randomUUID } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import Packet from 'aedes-packet';
import { BridgeError } from '../errors.js';
import type { SessionOwner } from './session-registry.js';
import type { RetainedOwner } from './retained-ledger.js';
import type { MemorySessionStore } from './session-store.js';

/**
 * Persistent sessions (subscriptions and queued QoS 1/2 messages of clean-session=false
 * clients) and retained messages, written to a file on shutdown and read back once on start,
 * so a restart of the bridge does not forget them. A crash skips the save: what was queued in
 * memory then is lost (the AMQP deliveries it came from were already acknowledged).
 *
 * Version 2 records who owns each session and since when it is offline (so client ids stay
 * their owners' and sessions expire across a restart) and who published each retained message
 * (so the retained limits per user hold); a version 1 file is still read.
 */
export interface SessionSnapshot {
  version: typeof SNAPSHOT_VERSION;
  savedAt: string;
  sessions: SavedSession[];
  retained: SavedRetained[];
}

interface SavedSession {
  clientId: string;
  /** Who the session belongs to (see session-registry.ts); version 1 files did not say. */
  owner: SessionOwner | null;
  /** When its client left, ms since the epoch; version 1 files did not say. */
  offlineSince: number;
  subscriptions: Array<{ topic: string; qos: number }>;
  queue: SavedPacket[];
}

/** What a version 1 file (written before sessions and retained messages had owners) holds. */
interface SessionSnapshotV1 {
  version: 1;
  savedAt: string;
  sessions: Array<Omit<SavedSession, 'owner' | 'offlineSince'>>;
  retained: SavedPacket[];
}

export const SNAPSHOT_VERSION = 2;

interface SavedPacket {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  brokerId: string;
  brokerCounter: number;
}

interface SavedRetained extends SavedPacket {
  /** Absent in version 1. */
  owner?: RetainedOwner;
}

export interface SnapshotCounts {
  sessions: number;
  queued: number;
  retained: number;
}

export async function saveSessions(store: MemorySessionStore, file: string): Promise<SnapshotCounts> {
  const now = Date.now();
  const records = new Map(store.registry.persistentSessions().map((record) => [record.clientId, record]));
  const clientIds = new Set([...records.keys(), ...store.persistentClientIds(), ...store.queues.clientIds()]);
  const sessions: SavedSession[] = [];
  for (const clientId of clientIds) {
    const subscriptions = (await store.persistence.subscriptionsByClient({ id: clientId })).map(({ topic, qos }) => ({ topic, qos }));
    // A PUBREL waiting for PUBCOMP is not kept: the client already has that message.
    const queue = store.queues.snapshot(clientId).filter((packet) => packet.cmd === 'publish').map(save);
    const record = records.get(clientId);
    if (subscriptions.length > 0 || queue.length > 0 || record) {
      sessions.push({ clientId, owner: record?.owner ?? null, offlineSince: record?.offlineSince ?? now, subscriptions, queue });
    }
  }
  const retained: SavedRetained[] = [];
  for await (const packet of store.persistence.createRetainedStream('#')) retained.push({ ...save(packet), owner: store.retainedOwner(packet.topic) ?? null });
  const snapshot: SessionSnapshot = { version: SNAPSHOT_VERSION, savedAt: new Date(now).toISOString(), sessions, retained };
  const partial = `${file}.${randomUUID()}.tmp`;
  await writeFile(partial, JSON.stringify(snapshot));
  await rename(partial, file); // atomic: a reader sees the old file or the new one
  return { sessions: sessions.length, queued: sessions.reduce((sum, session) => sum + session.queue.length, 0), retained: retained.length };
}

/** Restores a snapshot and removes the file (it is read once); null when there is none. */
export async function loadSessions(store: MemorySessionStore, file: string): Promise<SnapshotCounts | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const snapshot = upgrade(JSON.parse(text) as SessionSnapshot | SessionSnapshotV1, file);
  let queued = 0;
  store.registry.restore(snapshot.sessions.map(({ clientId, owner, offlineSince }) => ({ clientId, owner, offlineSince })));
  for (const session of snapshot.sessions) {
    if (session.subscriptions.length > 0) await store.persistence.addSubscriptions({ id: session.clientId }, session.subscriptions);
    for (const saved of session.queue) store.queues.enqueue(session.clientId, restore(saved));
    queued += session.queue.length;
  }
  for (const saved of snapshot.retained) await store.restoreRetained(restore(saved), saved.owner ?? null);
  await rm(file, { force: true });
  return { sessions: snapshot.sessions.length, queued, retained: snapshot.retained.length };
}

/**
 * A version 1 file's sessions have no owner (the first identity to connect takes each) and went
 * offline when it was saved; its retained messages have no owner either (they count in the totals only).
 */
function upgrade(snapshot: SessionSnapshot | SessionSnapshotV1, file: string): SessionSnapshot {
  if (snapshot.version === SNAPSHOT_VERSION) return snapshot;
  if (snapshot.version === 1) {
    const savedAt = Date.parse(snapshot.savedAt);
    return { ...snapshot, version: 2, sessions: snapshot.sessions.map((session) => ({ ...session, owner: null, offlineSince: savedAt })) };
  }
  throw new BridgeError('BRIDGE_ERR_SESSION_FILE', `session file ${file} has version ${String((snapshot as { version: unknown }).version)}; this bridge reads versions 1 and 2`);
}

function save(packet: Packet): SavedPacket {
  return {
    topic: packet.topic,
    payload: Buffer.from(packet.payload).toString('base64'),
    qos: packet.qos,
    retain: packet.retain,
    brokerId: packet.brokerId,
    brokerCounter: packet.brokerCounter,
  };
}

function restore(saved: SavedPacket): Packet {
  return new Packet({
    cmd: 'publish',
    topic: saved.topic,
    payload: Buffer.from(saved.payload, 'base64'),
    qos: saved.qos,
    retain: saved.retain,
    brokerId: saved.brokerId,
    brokerCounter: saved.brokerCounter,
  });
}
