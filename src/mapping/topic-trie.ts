import type { CompiledPattern } from './pattern.js';

const NONE = Number.POSITIVE_INFINITY;

class TrieNode {
  literals: Map<string, TrieNode> | null = null;
  single: TrieNode | null = null;
  /** Lowest rule index whose pattern ends exactly here. */
  end = NONE;
  /** Lowest rule index whose pattern has its final `#` here. */
  multi = NONE;
  /** Lowest rule index anywhere in this subtree, to prune the search. */
  min = NONE;
}

/**
 * All uplink topic patterns in one trie, built once: a topic is resolved by walking its
 * levels, not by trying each rule in turn, and the lowest-numbered matching rule wins.
 */
export class TopicTrie {
  private readonly root = new TrieNode();

  add(pattern: CompiledPattern, ruleIndex: number): void {
    let node = this.root;
    node.min = Math.min(node.min, ruleIndex);
    for (const segment of pattern.segments) {
      if (segment.kind === 'multi') {
        node.multi = Math.min(node.multi, ruleIndex);
        return;
      }
      let next: TrieNode | undefined;
      if (segment.kind === 'single') {
        next = node.single ??= new TrieNode();
      } else {
        node.literals ??= new Map();
        next = node.literals.get(segment.value);
        if (!next) {
          next = new TrieNode();
          node.literals.set(segment.value, next);
        }
      }
      node = next;
      node.min = Math.min(node.min, ruleIndex);
    }
    node.end = Math.min(node.end, ruleIndex);
  }

  /** The lowest rule index whose pattern matches these topic levels, or -1. */
  match(levels: readonly string[]): number {
    // [MQTT-4.7.2-1] a topic starting with `$` is not matched by a leading `+` or `#`.
    const dollar = levels.length > 0 && levels[0]!.charCodeAt(0) === 0x24;
    const best = this.visit(this.root, levels, 0, NONE, dollar);
    return best === NONE ? -1 : best;
  }

  private visit(node: TrieNode, levels: readonly string[], depth: number, best: number, dollar: boolean): number {
    if (node.min >= best) return best;
    const wildcardsAllowed = !(dollar && depth === 0);
    if (wildcardsAllowed && node.multi < best) best = node.multi; // `a/#` also matches `a`
    if (depth === levels.length) return node.end < best ? node.end : best;
    const literal = node.literals?.get(levels[depth]!);
    if (literal) best = this.visit(literal, levels, depth + 1, best, dollar);
    if (node.single && wildcardsAllowed) best = this.visit(node.single, levels, depth + 1, best, dollar);
    return best;
  }
}
