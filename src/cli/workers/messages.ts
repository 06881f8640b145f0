import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Readiness } from '../../observability/http-server.js';
import type { ReloadOutcome } from '../reload.js';

/** What a worker is told to run: the primary's file, the ports it picked, its place. */
export interface WorkerSettings {
  /** 1..N; a restarted worker keeps the slot of the one it replaces. */
  readonly slot: number;
  readonly file: string;
  /** Per listener of the configuration, the port the primary picked for a `port: 0`, else null. */
  readonly ports: ReadonlyArray<number | null>;
  readonly pretty: boolean;
}

/** From the primary to a worker, over the cluster's IPC channel. */
export type ToWorker =
  | { readonly type: 'bridge:start'; readonly settings: WorkerSettings }
  | { readonly type: 'bridge:readiness'; readonly id: number }
  | { readonly type: 'bridge:metrics'; readonly id: number }
  | { readonly type: 'bridge:reload'; readonly id: number; readonly why: string }
  | { readonly type: 'bridge:stop' };

/** From a worker to the primary. */
export type FromWorker =
  /** It listens for the primary's messages (one sent before would be lost): it may be told to start. */
  | { readonly type: 'bridge:hello' }
  | { readonly type: 'bridge:running' }
  | { readonly type: 'bridge:readiness'; readonly id: number; readonly readiness: Readiness }
  | { readonly type: 'bridge:metrics'; readonly id: number; readonly metrics: ReadonlyArray<MetricObjectWithValues<MetricValue<string>>> }
  | { readonly type: 'bridge:reloaded'; readonly id: number; readonly outcome: ReloadOutcome };

/** The answers the primary waits for, by request id. */
export type WorkerAnswer = Extract<FromWorker, { id: number }>;

// Ours are told apart by prefix from whatever else may use the channel (node:cluster's own messages).
const isOurs = (message: unknown): message is { type: string } =>
  typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('bridge:');

export const isToWorker = (message: unknown): message is ToWorker => isOurs(message);
export const isFromWorker = (message: unknown): message is FromWorker => isOurs(message);
