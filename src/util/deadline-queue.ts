import { Fifo } from './fifo.js';

/** Something that is due at `deadline` unless it is settled before. */
export interface Expiring {
  readonly deadline: number;
  readonly settled: boolean;
}

/**
 * Items by deadline, for a sweep that settles what is due. Items mostly come in deadline order:
 * those go into a FIFO (O(1)); one that comes with a deadline earlier than the last one queued
 * goes into a binary min-heap beside it (O(log n)), so the earliest deadline is always one of the
 * two heads. Settled items are dropped once they reach a head.
 */
export class DeadlineQueue<T extends Expiring> {
  private readonly ordered = new Fifo<T>();
  private lastOrdered = Number.NEGATIVE_INFINITY;
  /** The items that came out of order, as a min-heap by deadline. */
  private readonly early: T[] = [];

  get length(): number {
    return this.ordered.length + this.early.length;
  }

  push(item: T): void {
    if (item.deadline >= this.lastOrdered || this.ordered.length === 0) {
      this.ordered.push(item);
      this.lastOrdered = item.deadline;
    } else {
      this.heapPush(item);
    }
  }

  /** The unsettled item due first. */
  first(): T | undefined {
    this.dropSettled();
    const ordered = this.ordered.peek();
    const early = this.early[0];
    if (!early) return ordered;
    if (!ordered) return early;
    return early.deadline < ordered.deadline ? early : ordered;
  }

  /** Lets go of settled items at the heads (the others wait until they reach one). */
  dropSettled(): void {
    while (this.ordered.peek()?.settled) this.ordered.shift();
    while (this.early[0]?.settled) this.heapPop();
  }

  /** Empties the queue; returns what it held, in no particular order. */
  drain(): T[] {
    const all = this.ordered.drain().concat(this.early);
    this.early.length = 0;
    this.lastOrdered = Number.NEGATIVE_INFINITY;
    return all;
  }

  private heapPush(item: T): void {
    const heap = this.early;
    let index = heap.length;
    heap.push(item);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (heap[parent]!.deadline <= item.deadline) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = item;
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
