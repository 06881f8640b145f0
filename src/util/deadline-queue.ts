import { Fifo } from './fifo.js';

/** Something that is due at `deadline` unless it is settled before. */
export interface Expiring {
  readonly deadline: number;
  readonly settled: boolean;
}

/** The items that came out of order with one deadline, in the order they came. */
interface Bucket<T> {
  readonly deadline: number;
  readonly items: Fifo<T>;
}

/**
 * Items by deadline, for a sweep that settles what is due. Items mostly come in deadline order:
 * those go into a FIFO (O(1)); one that comes with a deadline earlier than the last one queued
 * goes into a bucket for its deadline, and the buckets form a binary min-heap beside the FIFO, so
 * the earliest deadline is always at one of the two heads. Deadlines are milliseconds and items
 * come in batches (a socket read's publishes share their arrival time), so there are far fewer
 * buckets than items: under uplink QoS 0 a heap of the items themselves was 3.8% of the bridge's
 * busy time. Settled items are dropped once they reach a head.
 */
export class DeadlineQueue<T extends Expiring> {
  private readonly ordered = new Fifo<T>();
  private lastOrdered = Number.NEGATIVE_INFINITY;
  /** The buckets of the items that came out of order, as a min-heap by deadline. */
  private readonly early: Array<Bucket<T>> = [];
  private readonly earlyByDeadline = new Map<number, Bucket<T>>();
  private earlyItems = 0;

  get length(): number {
    return this.ordered.length + this.earlyItems;
  }

  push(item: T): void {
    if (item.deadline >= this.lastOrdered || this.ordered.length === 0) {
      this.ordered.push(item);
      this.lastOrdered = item.deadline;
      return;
    }
    let bucket = this.earlyByDeadline.get(item.deadline);
    if (!bucket) {
      bucket = { deadline: item.deadline, items: new Fifo<T>() };
      this.earlyByDeadline.set(item.deadline, bucket);
      this.heapPush(bucket);
    }
    bucket.items.push(item);
    this.earlyItems++;
  }

  /** The unsettled item due first. */
  first(): T | undefined {
    this.dropSettled();
    const ordered = this.ordered.peek();
    const early = this.early[0]?.items.peek();
    if (!early) return ordered;
    if (!ordered) return early;
    return early.deadline < ordered.deadline ? early : ordered;
  }

  /** Lets go of settled items at the heads (the others wait until they reach one). */
  dropSettled(): void {
    while (this.ordered.peek()?.settled) this.ordered.shift();
    for (let bucket = this.early[0]; bucket; bucket = this.early[0]) {
      while (bucket.items.peek()?.settled) {
        bucket.items.shift();
        this.earlyItems--;
      }
      if (bucket.items.length > 0) return;
      this.earlyByDeadline.delete(bucket.deadline);
      this.heapPop();
    }
  }

  /** Empties the queue; returns what it held, in no particular order. */
  drain(): T[] {
    const all = this.ordered.drain();
    for (const bucket of this.early) for (const item of bucket.items.drain()) all.push(item);
    this.early.length = 0;
    this.earlyByDeadline.clear();
    this.earlyItems = 0;
    this.lastOrdered = Number.NEGATIVE_INFINITY;
    return all;
  }

  private heapPush(bucket: Bucket<T>): void {
    const heap = this.early;
    let index = heap.length;
    heap.push(bucket);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent]!.deadline <= bucket.deadline) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = bucket;
  }

  private heapPop(): void {
    const heap = this.early;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.deadline < heap[left]!.deadline ? right : left;
      if (heap[child]!.deadline >= last.deadline) break;
      heap[index] = heap[child]!;
      index = child;
    }
    heap[index] = last;
  }
}
