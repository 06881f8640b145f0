import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasRepeatedFilters, sequenceReturnCodes } from '../../../src/mqtt/subscribe-sequence.js';
import { SUBACK_FAILURE } from '../../../src/protocol/mqtt.js';

const filters = (...pairs: Array<[string, number]>) => pairs.map(([topic, qos]) => ({ topic, qos }));

test('hasRepeatedFilters - true only when the same filter occurs twice', () => {
  assert.equal(hasRepeatedFilters([]), false);
  assert.equal(hasRepeatedFilters(filters(['a', 1])), false);
  assert.equal(hasRepeatedFilters(filters(['a', 1], ['a/#', 1], ['#', 0])), false);
  assert.equal(hasRepeatedFilters(filters(['a', 1], ['b', 1], ['a', 1])), true);
  assert.equal(hasRepeatedFilters(filters(['a', 1], ['a', 2])), true);
});

test('sequenceReturnCodes - one code per filter, in order: each occurrence gets the QoS it asked for, as a sequence of SUBSCRIBEs would', () => {
  // aedes handled `devices/alice/commands/#` once, at QoS 2 (its last occurrence), and refused `#`.
  const requested = filters(['devices/alice/commands/#', 1], ['#', 0], ['devices/alice/commands/#', 2]);
  assert.deepEqual(sequenceReturnCodes(requested, new Map([['devices/alice/commands/#', 2], ['#', SUBACK_FAILURE]])), [1, SUBACK_FAILURE, 2]);
  // Mosquitto answers [2, 0, 1, 1] to this one.
  assert.deepEqual(sequenceReturnCodes(filters(['a', 2], ['a', 0], ['b', 1], ['a', 1]), new Map([['a', 1], ['b', 1]])), [2, 0, 1, 1]);
});

test('sequenceReturnCodes - a refused filter is refused wherever it occurs', () => {
  const requested = filters(['devices/bob/commands/#', 1], ['devices/alice/commands/#', 0], ['devices/bob/commands/#', 2]);
  const granted = new Map([['devices/bob/commands/#', SUBACK_FAILURE], ['devices/alice/commands/#', 0]]);
  assert.deepEqual(sequenceReturnCodes(requested, granted), [SUBACK_FAILURE, 0, SUBACK_FAILURE]);
  assert.deepEqual(sequenceReturnCodes(filters(['x', 1]), new Map()), [SUBACK_FAILURE], 'a filter aedes did not answer for is not granted');
});

test('sequenceReturnCodes - when the last occurrence was granted less than it asked, no occurrence gets more', () => {
  const requested = filters(['a', 2], ['a', 1], ['a', 2]);
  assert.deepEqual(sequenceReturnCodes(requested, new Map([['a', 1]])), [1, 1, 1]);
  assert.deepEqual(sequenceReturnCodes(filters(['a', 0], ['a', 2]), new Map([['a', 1]])), [0, 1]);
});
