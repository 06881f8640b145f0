import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeadlineQueue } from '../../../src/util/deadline-queue.js';

interface Item {
  readonly name: string;
  readonly deadline: number;
  settled: boolean;
}

const item = (name: string, deadline: number): Item => ({ name, deadline, settled: false });

/** The same numbers in [0, 1) on every run. */
function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

/**
 * Drives a queue at random against a model (the live items): `arrive` (with chance `arriveChance`)
 * gives the items that come at a step; otherwise one live item is settled, or first() and length
 * are checked against the model. Returns the queue and what is still live.
 */
function runAgainstModel(random: () => number, steps: number, arriveChance: number, arrive: (step: number) => Item[]): { queue: DeadlineQueue<Item>; live: Item[] } {
  const queue = new DeadlineQueue<Item>();
  const live: Item[] = [];
  for (let step = 0; step < steps; step++) {
    const roll = random();
    if (roll < arriveChance) {
      for (const next of arrive(step)) {
        queue.push(next);
        live.push(next);
      }
    } else if (roll < 0.8 && live.length > 0) {
      const [settled] = live.splice(Math.floor(random() * live.length), 1);
      settled!.settled = true;
      if (random() < 0.5) queue.dropSettled();
    } else {
      const expected = live.length === 0 ? undefined : Math.min(...live.map((candidate) => candidate.deadline));
      const first = queue.first();
      assert.equal(first?.deadline, expected, `step ${step}`);
      assert.equal(first?.settled ?? false, false);
      assert.ok(queue.length >= live.length, 'every unsettled item is still held');
    }
  }
  return { queue, live };
}

test('DeadlineQueue - first() is the unsettled item due first, whatever order they came in', () => {
  const queue = new DeadlineQueue<Item>();
  const items = [item('a', 10), item('b', 20), item('early', 5), item('c', 30), item('mid', 15), item('d', 30)];
  for (const next of items) queue.push(next);
  const order: string[] = [];
  for (let first = queue.first(); first; first = queue.first()) {
    order.push(first.name);
    first.settled = true;
  }
  assert.deepEqual(order, ['early', 'a', 'mid', 'b', 'c', 'd']);
  assert.equal(queue.length, 0, 'settled items are let go of');
});

test('DeadlineQueue - matches a sorted list over mostly ordered deadlines with random settling', () => {
  const random = seededRandom(42);
  let clock = 0;
  runAgainstModel(random, 5_000, 0.5, (step) => {
    clock += 1;
    // One in five comes late: its deadline is up to 50 before the newest.
    return [item(`i${step}`, random() < 0.2 ? clock - Math.floor(random() * 50) : clock)];
  });
});

test('DeadlineQueue - drain() empties it and returns everything, settled or not', () => {
  const queue = new DeadlineQueue<Item>();
  const items = [item('a', 10), item('b', 5), item('c', 20)];
  for (const next of items) queue.push(next);
  items[2]!.settled = true;
  assert.deepEqual(queue.drain().map((drained) => drained.name).sort(), ['a', 'b', 'c']);
  assert.equal(queue.length, 0);
  assert.equal(queue.first(), undefined);
  queue.push(item('later', 1));
  assert.equal(queue.first()?.name, 'later', 'usable again after a drain');
});

test('DeadlineQueue - batches sharing a deadline and coming out of order: first() and length match a model under random settling', () => {
  const random = seededRandom(7);
  let clock = 100;
  const { queue, live } = runAgainstModel(random, 3_000, 0.3, (step) => {
    // A batch of up to 20 items with one deadline, often older than the newest queued.
    clock += 1;
    const deadline = random() < 0.5 ? clock - Math.floor(random() * 30) : clock;
    return Array.from({ length: 1 + Math.floor(random() * 20) }, (_, i) => item(`b${step}.${i}`, deadline));
  });
  for (const left of live) left.settled = true;
  assert.equal(queue.first(), undefined);
  assert.equal(queue.length, 0, 'all let go of once settled');
  const drained = new DeadlineQueue<Item>();
  for (const [name, deadline] of [['late', 50], ['early', 10], ['early2', 10], ['mid', 30]] as const) drained.push(item(name, deadline));
  assert.deepEqual(drained.drain().map((entry) => entry.name).sort(), ['early', 'early2', 'late', 'mid']);
  assert.equal(drained.length, 0);
});
