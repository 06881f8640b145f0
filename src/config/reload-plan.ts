import type { BridgeConfig } from './schema.js';

/** Settings a reload applies while devices stay connected. */
export const RELOADABLE_SECTIONS = ['uplink', 'downlink', 'auth', 'acl', 'amqp.exchanges', 'log.level'] as const;

/**
 * The settings that differ between two configurations and only take effect after a restart
 * (listener ports, the AMQP URL, budgets, ...): a reload keeps their old values and says so.
 */
export function restartRequiredChanges(running: BridgeConfig, next: BridgeConfig): string[] {
  const changes: string[] = [];
  const compare = (path: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) changes.push(path);
  };
  for (const key of Object.keys(running.mqtt) as Array<keyof BridgeConfig['mqtt']>) compare(`mqtt.${key}`, running.mqtt[key], next.mqtt[key]);
  for (const key of Object.keys(running.amqp) as Array<keyof BridgeConfig['amqp']>) {
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
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const sections: string[] = [];
  if (!same(running.uplink, next.uplink)) sections.push('uplink');
  if (!same(running.downlink, next.downlink)) sections.push('downlink');
  if (!same(running.auth, next.auth)) sections.push('auth');
  if (!same(running.acl, next.acl)) sections.push('acl');
  if (!same(running.amqp.exchanges, next.amqp.exchanges)) sections.push('amqp.exchanges');
  if (running.log.level !== next.log.level) sections.push('log.level');
  return sections;
}
