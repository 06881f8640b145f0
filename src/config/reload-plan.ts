import type { BridgeConfig } from './schema.js';

/** Whether a setting takes effect on a reload, or keeps its old value until a restart. */
export type ReloadPolicy = 'reload' | 'restart';

/** A section's policy: one for the whole section, or one per key with a default for the others. */
type SectionPolicy = ReloadPolicy | { readonly keys: Readonly<Record<string, ReloadPolicy>>; readonly others: ReloadPolicy };

/**
 * The one table of what a reload applies. Every top-level section of the configuration has an
 * entry (the type insists: a new section does not compile until it is given one). Within a
 * section whose keys differ, each changed key is reported on its own (`mqtt.maxPacketBytes`).
 */
export const RELOAD_POLICY: { readonly [Section in keyof BridgeConfig]-?: SectionPolicy } = {
  mqtt: { keys: {}, others: 'restart' },
  amqp: { keys: { exchanges: 'reload' }, others: 'restart' },
  uplink: 'reload',
  downlink: 'reload',
  auth: 'reload',
  acl: 'reload',
  flow: { keys: {}, others: 'restart' },
  limits: { keys: {}, others: 'restart' },
  http: { keys: {}, others: 'restart' },
  log: { keys: { level: 'reload' }, others: 'restart' },
  shutdownTimeoutMs: 'restart',
};

export interface ReloadPlan {
  /** The reloadable settings that changed, e.g. `uplink`, `amqp.exchanges`. */
  readonly applied: string[];
  /** The changed settings that keep their old value until a restart, e.g. `mqtt.listeners`. */
  readonly restartRequired: string[];
  /** The configuration the bridge runs with after the reload: `next` where a reload applies, `running` elsewhere. */
  readonly effective: BridgeConfig;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** What a reload from `running` to `next` changes now, and what only a restart would. */
export function planReload(running: BridgeConfig, next: BridgeConfig): ReloadPlan {
  const applied: string[] = [];
  const restartRequired: string[] = [];
  const effective: Record<string, unknown> = {};
  const record = (path: string, policy: ReloadPolicy, before: unknown, after: unknown): unknown => {
    if (same(before, after)) return before;
    (policy === 'reload' ? applied : restartRequired).push(path);
    return policy === 'reload' ? after : before;
  };
  for (const section of Object.keys(RELOAD_POLICY) as Array<keyof BridgeConfig>) {
    const policy = RELOAD_POLICY[section];
    const before = running[section];
    const after = next[section];
    if (typeof policy === 'string') {
      const value = record(section, policy, before, after);
      if (value !== undefined) effective[section] = value;
      continue;
    }
    const merged: Record<string, unknown> = {};
    // Both sides' keys: an optional setting absent from one configuration has no key there at all.
    const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
    for (const key of keys) {
      const value = record(`${section}.${key}`, policy.keys[key] ?? policy.others, (before as Record<string, unknown> | undefined)?.[key], (after as Record<string, unknown> | undefined)?.[key]);
      if (value !== undefined) merged[key] = value;
    }
    effective[section] = merged;
  }
  return { applied, restartRequired, effective: effective as unknown as BridgeConfig };
}
