import { filterCovers, filtersOverlap } from '../protocol/mqtt.js';
import { filterOf, type CompiledPattern } from '../mapping/pattern.js';
import { compileUplinkRule } from '../mapping/uplink.js';
import { ACL_PLACEHOLDER } from '../auth/acl.js';
import type { BridgeConfig } from './schema.js';

type CompiledUplinkRule = ReturnType<typeof compileUplinkRule>;

/** A warning about a configuration that is valid but probably not what was meant. */
export interface LintWarning {
  /** Where in the configuration, e.g. ['uplink', 2, 'topic']. */
  path: ReadonlyArray<string | number>;
  message: string;
}

/**
 * Warnings `validate` prints (and `--strict` makes errors):
 * - an uplink rule shadowed by an earlier one that matches every topic it matches;
 * - routing keys that collide: different topics of one rule, or of two rules on the same
 *   exchange with the same routing key, that become the same routing key;
 * - with an ACL, a downlink rule whose topics the ACL lets no client receive;
 * - ACL entries on `{clientId}` while `auth.clientIds` lets anyone claim any client id.
 */
export function lintConfig(config: BridgeConfig): LintWarning[] {
  // A valid configuration's rules compile.
  const uplink = config.uplink.map((rule) => compileUplinkRule(rule));
  return [...shadowedRules(config, uplink), ...collidingRoutingKeys(config, uplink), ...unreachableDownlinks(config), ...clientIdAclWithoutRestriction(config)];
}

function shadowedRules(config: BridgeConfig, uplink: readonly CompiledUplinkRule[]): LintWarning[] {
  const warnings: LintWarning[] = [];
  const filters = uplink.map((rule) => filterOf(rule.pattern));
  config.uplink.forEach((rule, index) => {
    const earlier = filters.slice(0, index).findIndex((previous) => filterCovers(previous, filters[index]!));
    if (earlier === -1) return;
    const by = config.uplink[earlier]!;
    warnings.push({
      path: ['uplink', index, 'topic'],
      message: `uplink[${index}] (${rule.name}) never takes a publish: uplink[${earlier}] (${by.name}) with topic "${by.topic}" comes first and matches every topic "${rule.topic}" matches`,
    });
  });
  return warnings;
}

function collidingRoutingKeys(config: BridgeConfig, uplink: readonly CompiledUplinkRule[]): LintWarning[] {
  const warnings: LintWarning[] = [];
  // A 1.0 rule sends to an address, which a subject need not tell apart: only routing keys are checked.
  const used = uplink.map((rule) => new Set<string>(rule.protocol === '0-9-1' ? (rule.key?.placeholders ?? []) : ['topic']));
  config.uplink.forEach((rule, index) => {
    if (used[index]!.has('topic')) return; // the whole topic is in the key: no two topics collide
    const dropped = droppedLevels(uplink[index]!.pattern, used[index]!);
    if (dropped.length === 0) return;
    warnings.push({
      path: ['uplink', index, 'routingKey'],
      message: `uplink[${index}] (${rule.name}): routing key "${rule.routingKey}" leaves out ${dropped.join(' and ')} of "${rule.topic}", so different topics get the same routing key`,
    });
  });
  config.uplink.forEach((rule, index) => {
    const twin = config.uplink.findIndex(
      (other, otherIndex) => otherIndex < index && other.exchange === rule.exchange && other.routingKey === rule.routingKey && !used[index]!.has('topic'),
    );
    if (twin === -1) return;
    warnings.push({
      path: ['uplink', index, 'routingKey'],
      message: `uplink[${index}] (${rule.name}) and uplink[${twin}] (${config.uplink[twin]!.name}) send different topics to exchange "${rule.exchange}" with the same routing key "${rule.routingKey}": consumers cannot tell them apart`,
    });
  });
  return warnings;
}

/** The wildcard levels of a pattern that the routing key does not carry. */
function droppedLevels(pattern: CompiledPattern, used: ReadonlySet<string>): string[] {
  const dropped: string[] = [];
  pattern.segments.forEach((segment, index) => {
    if (segment.kind === 'single' && (segment.name === null || !used.has(segment.name))) dropped.push(`level ${index + 1} (${segment.name ? `{${segment.name}}` : '+'})`);
    if (segment.kind === 'multi' && !used.has('#')) dropped.push(`the levels under "#"`);
  });
  return dropped;
}

/** The downlink topic template as a filter a subscription would have to reach. */
function downlinkTopicFilter(topic: string): string {
  const levels = topic.replace(/\{\{|\}\}/g, '').split('/');
  return levels
    .map((level, index) => {
      const multi = /\{(#|routingKey|headers\.[^}]+)\}/.test(level);
      if (multi) return index === levels.length - 1 ? '#' : '+';
      return /\{[^}]+\}/.test(level) ? '+' : level;
    })
    .join('/');
}

/**
 * A downlink message reaches a device only when that device's ACL lets it receive the topic: the
 * first entry that matches the topic for that client is an allow. That holds for no client and
 * no topic of a rule when no allow entry for subscribe overlaps the rule's topics, or when a deny
 * entry that applies to everyone (no `users`, no placeholder) covers all of them before any allow
 * entry overlaps them.
 */
function unreachableDownlinks(config: BridgeConfig): LintWarning[] {
  const acl = config.acl;
  if (!acl) return [];
  const warnings: LintWarning[] = [];
  config.downlink.forEach((rule, index) => {
    const filter = downlinkTopicFilter(rule.topic);
    const blocked = blockingEntry(acl.rules, filter);
    if (blocked === 'reachable') return;
    warnings.push({
      path: ['downlink', index, 'topic'],
      message:
        blocked === 'no allow'
          ? `downlink[${index}] (${rule.name}): no ACL entry lets anyone subscribe to "${rule.topic}", so its messages reach no device`
          : `downlink[${index}] (${rule.name}): acl[${blocked}] denies every topic of "${rule.topic}" to everyone before an entry allows it, so its messages reach no device`,
    });
  });
  return warnings;
}

/** Whether some client may receive some topic of `filter`: 'reachable', or what stops every one. */
function blockingEntry(entries: NonNullable<BridgeConfig['acl']>['rules'], filter: string): 'reachable' | 'no allow' | number {
  for (const [index, entry] of entries.entries()) {
    const actions = entry.allow ?? entry.deny;
    if (actions !== 'subscribe' && !(Array.isArray(actions) && actions.includes('subscribe'))) continue;
    const anyone = entry.topic.replace(ACL_PLACEHOLDER, '+');
    if (entry.allow !== undefined) {
      if (filtersOverlap(anyone, filter)) return 'reachable';
    } else if (entry.users === undefined && anyone === entry.topic && filterCovers(entry.topic, filter)) {
      return index;
    }
  }
  return 'no allow';
}

/**
 * A client chooses its own client id: an ACL entry on `{clientId}` grants whatever id a client
 * claims (alice connecting as client id `bob` passes bob's entries) unless `auth.clientIds`
 * restricts the ids each user may use.
 */
function clientIdAclWithoutRestriction(config: BridgeConfig): LintWarning[] {
  if (!config.acl || config.auth?.clientIds) return [];
  const warnings: LintWarning[] = [];
  config.acl.rules.forEach((entry, index) => {
    if (!entry.topic.includes('{clientId}')) return;
    warnings.push({
      path: ['acl', index, 'topic'],
      message: `acl[${index}]: "${entry.topic}" trusts the client id a client claims, and without auth.clientIds any user may claim any client id; restrict them (e.g. clientIds: ["{username}", "{username}-*"]) or write the entry on {username}`,
    });
  });
  return warnings;
}
