import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captureLogs } from '../../helpers/log-capture.js';

test('logger - fields that only share a name with a secret (key, url) are logged as they are', () => {
  const { logger, lines } = captureLogs('info');
  logger.child({ part: 'amqp' }).info(
    { rule: 'commands', binding: { exchange: 'commands', key: '*.#' }, key: 'devices.d1.state', url: 'ws://127.0.0.1:8083/mqtt' },
    'downlink consumer started',
  );
  assert.equal(lines.length, 1);
  const { binding, key, url, part, name } = lines[0]!;
  assert.deepEqual({ binding, key, url, part, name }, {
    binding: { exchange: 'commands', key: '*.#' },
    key: 'devices.d1.state',
    url: 'ws://127.0.0.1:8083/mqtt',
    part: 'amqp',
    name: 'mqtt-amqp-bridge',
  });
});
