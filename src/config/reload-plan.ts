import type { BridgeConfig } from './schema.js';

/** Settings a reload applies while devices stay connected, each with how to read it. */
const RELOADABLE: ReadonlyArray<readonly [string, (config: BridgeConfig) => unknown]> = [
  ['uplink', (config) => config.uplink],
  ['downlink', (config) => config.downlink],
  ['auth', (config) => config.auth],
  ['acl', (config) => config.acl],
  ['amqp.exchanges', (config) => config.amqp.exchanges],
  ['log.level', (config) => config.log.level],
];

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The settings that differ between two configurations and only take effect after a restart
 * (listener ports, the AMQP URL, budgets, ...): a reload keeps their old values and says so.
 */
export function restartRequiredChanges(running: BridgeConfig, next: BridgeConfig): string[] {
  const changes: string[] = [];
  const compare = (path: string, a: unknown, b: unknown) => {
    if (!same(a, b)) changes.push(path);
  };
  // Both sides' keys: an optional setting absent from one configuration has no key there at all.
  for (const key of keysOfBoth(running.mqtt, next.mqtt)) compare(`mqtt.${key}`, running.mqtt[key], next.mqtt[key]);
  for (const key of keysOfBoth(running.amqp, next.amqp)) {
    if (key !== 'exchanges') compare(`amqp.${key}`, running.amqp[key], next.amqp[key]);
  }
  compare('flow', running.flow, next.flow);
  compare('limits', running.limits, next.limits);
  compare('http', running.http, next.http);
  compare('shutdownTimeoutMs', running.shutdownTimeoutMs, next.shutdownTimeoutMs);
  return changes;
}

/** The reloadable sections that differ. */
export function reloadedSections(running: BridgeConfig, next: BridgeConfig): string[] {
  return RELOADABLE.filter(([, read]) => !same(read(running), read(next))).map(([section]) => section);
}

function keysOfBoth<T extends object>(a: T, b: T): Array<keyof T> {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])] as Array<keyof T>;
}
