import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Qos2Forwards } from '../../../src/mqtt/qos2-forwards.js';

test('QoS 2 forwards - a resend waits for the first copy of its packet id only, and runs once it settles, in order', () => {
  const forwards = new Qos2Forwards();
  const ran: string[] = [];
  forwards.begin('dev-1', 7);
  forwards.begin('dev-1', 8);
  forwards.begin('dev-2', 7);
  forwards.afterPending('dev-1', 7, () => ran.push('dev-1/7 first'));
  forwards.afterPending('dev-1', 7, () => ran.push('dev-1/7 second'));
  forwards.afterPending('dev-1', 9, () => ran.push('dev-1/9 nothing pending'));
  forwards.afterPending('dev-3', 7, () => ran.push('dev-3/7 unknown client'));
  assert.deepEqual(ran, ['dev-1/9 nothing pending', 'dev-3/7 unknown client']);
  forwards.end('dev-2', 7); // another client's same packet id settles: dev-1's still wait
  assert.equal(ran.length, 2);
  forwards.end('dev-1', 7);
  assert.deepEqual(ran.slice(2), ['dev-1/7 first', 'dev-1/7 second']);
  forwards.end('dev-1', 7); // settling again runs nothing twice
  assert.equal(ran.length, 4);
  forwards.afterPending('dev-1', 7, () => ran.push('dev-1/7 after it settled'));
  assert.equal(ran[4], 'dev-1/7 after it settled');
});

test('QoS 2 forwards - a packet id begun twice settles once; nothing is kept for a client once its forwards settled', () => {
  const forwards = new Qos2Forwards();
  const ran: string[] = [];
  forwards.begin('dev-1', 1);
  forwards.afterPending('dev-1', 1, () => ran.push('waiter'));
  forwards.begin('dev-1', 1); // the same id begun again keeps its waiter
  forwards.begin('dev-1', 2);
  assert.equal(forwards.clients, 1);
  forwards.end('dev-1', 1);
  assert.deepEqual(ran, ['waiter']);
  assert.equal(forwards.clients, 1, 'packet id 2 is still being forwarded');
  forwards.end('dev-1', 2);
  assert.equal(forwards.clients, 0);
  forwards.end('dev-9', 1); // never begun: nothing happens
  assert.equal(forwards.clients, 0);
});
