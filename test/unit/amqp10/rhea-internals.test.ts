import assert from 'node:assert/strict';
import { test } from 'node:test';
import rhea, { type Delivery, type Sender } from 'rhea';
import { bodyBytes, checkRheaInternals, dataSection, describePeerError, endpointError, outcomeError, saslMechanisms, senderCredit } from '../../../src/amqp10/rhea-internals.js';

test('rhea internals - the installed rhea has what the bridge relies on', () => {
  assert.doesNotThrow(() => checkRheaInternals());
});

test('rhea internals - a body decoded from the wire: data sections, binary and string amqp-values become bytes; anything else null', () => {
  const roundTrip = (body: unknown) => rhea.message.decode(rhea.message.encode({ body })).body as unknown;
  assert.deepEqual(bodyBytes(roundTrip(dataSection(Buffer.from([0, 255])))), Buffer.from([0, 255]));
  assert.deepEqual(bodyBytes(roundTrip(rhea.message.data_sections([Buffer.from('ab'), Buffer.from('cd')]))), Buffer.from('abcd'));
  assert.deepEqual(bodyBytes(roundTrip(Buffer.from([1, 2]))), Buffer.from([1, 2]));
  assert.deepEqual(bodyBytes(roundTrip('héllo')), Buffer.from('héllo', 'utf8'));
  assert.deepEqual(bodyBytes(undefined), Buffer.alloc(0), 'no body section: empty');
  assert.equal(bodyBytes(roundTrip({ a: 1 })), null);
  assert.equal(bodyBytes(roundTrip(42)), null);
  assert.equal(bodyBytes(null), null);
  assert.equal(bodyBytes(roundTrip(rhea.message.sequence_section([1, 2]))), null);
});

test('rhea internals - SASL: one mechanism offered, as asked', () => {
  assert.deepEqual(Object.keys(saslMechanisms('PLAIN', 'u', 'p') as object), ['PLAIN']);
  assert.deepEqual(Object.keys(saslMechanisms('ANONYMOUS', '', '') as object), ['ANONYMOUS']);
  assert.deepEqual(Object.keys(saslMechanisms('EXTERNAL', '', '') as object), ['EXTERNAL']);
});

test('rhea internals - error conditions of an outcome and of a link, and how they are logged', () => {
  const rejected = { remote_state: { error: { condition: 'amqp:not-found', description: 'gone' } } } as unknown as Delivery;
  assert.deepEqual(outcomeError(rejected), { condition: 'amqp:not-found', description: 'gone' });
  assert.equal(outcomeError({ remote_state: {} } as unknown as Delivery), null);
  assert.deepEqual(endpointError({ error: { condition: 'amqp:unauthorized-access' } }), { condition: 'amqp:unauthorized-access', description: '' });
  assert.equal(endpointError(undefined), null);
  assert.equal(endpointError({ error: 'text' }), null);
  assert.equal(describePeerError({ condition: 'amqp:not-found', description: 'gone' }), 'amqp:not-found: gone');
  assert.equal(describePeerError({ condition: 'amqp:internal-error', description: '' }), 'amqp:internal-error');
  assert.equal(describePeerError(null), 'no error condition given');
});

test('rhea internals - a sender\'s credit and written transfers', () => {
  assert.deepEqual(senderCredit({ credit: 5, delivery_count: 3 } as unknown as Sender), { credit: 5, written: 3 });
  assert.deepEqual(senderCredit({} as unknown as Sender), { credit: 0, written: 0 });
});
