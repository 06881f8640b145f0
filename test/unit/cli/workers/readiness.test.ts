import assert from 'node:assert/strict';
import { test } from 'node:test';
import { combineReadiness } from '../../../../src/cli/workers/readiness.js';

const ready = { ready: true, reasons: [], degraded: [] };

test('combineReadiness - ready when the primary runs and every worker runs and is ready', () => {
  assert.deepEqual(
    combineReadiness(true, [
      { slot: 1, state: 'running', answer: ready },
      { slot: 2, state: 'running', answer: ready },
    ]),
    ready,
  );
});

test('combineReadiness - not ready, naming each worker and why: its own reasons, starting, restarting, no answer, stopping', () => {
  assert.deepEqual(
    combineReadiness(true, [
      { slot: 1, state: 'running', answer: { ready: false, reasons: ['amqp: connecting', 'mqtt: not every listener is up'], degraded: [] } },
      { slot: 2, state: 'starting' },
      { slot: 3, state: 'restarting', died: 'signal SIGKILL' },
      { slot: 4, state: 'running', answer: null },
      { slot: 5, state: 'stopping' },
      { slot: 6, state: 'running', answer: ready },
    ]),
    {
      ready: false,
      reasons: [
        'worker 1: amqp: connecting',
        'worker 1: mqtt: not every listener is up',
        'worker 2: starting',
        'worker 3: restarting (it died: signal SIGKILL)',
        'worker 4: no answer',
        'worker 5: stopping',
      ],
      degraded: [],
    },
  );
});

test('combineReadiness - a stopping primary is not ready even with every worker ready', () => {
  assert.deepEqual(combineReadiness(false, [{ slot: 1, state: 'running', answer: ready }]), { ready: false, reasons: ['primary: stopping'], degraded: [] });
});

test('combineReadiness - what RabbitMQ refuses is listed once however many workers report it, and does not make it unready', () => {
  const refused = { ready: true, reasons: [], degraded: ['exchange "telemetry" (uplink rule telemetry): 406 PRECONDITION_FAILED'] };
  assert.deepEqual(
    combineReadiness(true, [
      { slot: 1, state: 'running', answer: refused },
      { slot: 2, state: 'running', answer: refused },
    ]),
    refused,
  );
});
