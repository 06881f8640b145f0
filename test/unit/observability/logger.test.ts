import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.js';
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

test('logger - fields given at creation are on every line, children included (run --workers: which process wrote it)', () => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ level: 'info', pretty: false, destination, fields: { role: 'worker', worker: 2, pid: 4242 } });
  logger.info('one');
  logger.child({ part: 'mqtt' }).warn('two');
  const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(parsed.map(({ role, worker, pid, msg }) => ({ role, worker, pid, msg })), [
    { role: 'worker', worker: 2, pid: 4242, msg: 'one' },
    { role: 'worker', worker: 2, pid: 4242, msg: 'two' },
  ]);
});

test('logger - pretty lines carry the prefix instead of the fields', () => {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  const logger = createLogger({ level: 'info', pretty: true, destination, fields: { role: 'worker', worker: 2 }, prettyPrefix: '[worker 2] ' });
  logger.info({ rule: 'all' }, 'hello');
  assert.match(text, /INFO.*\[worker 2\] hello/);
  assert.match(text, /rule: "all"/);
  assert.doesNotMatch(text, /role|worker: 2/);
});
