// qlobber ships no types: the part of its API the cluster's route table uses.
declare module 'qlobber' {
  export interface QlobberOptions {
    separator?: string;
    wildcard_one?: string;
    wildcard_some?: string;
    match_empty_levels?: boolean;
    max_words?: number;
    max_wildcard_somes?: number;
  }
  /** A topic matcher whose values, per filter and per match, are sets (each value once). */
  export class QlobberDedup<V> {
    constructor(options?: QlobberOptions);
    add(filter: string, value: V): this;
    remove(filter: string, value?: V): this;
    match(topic: string): Set<V>;
    clear(): this;
  }
}
