import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactRedisUrl, redisOptions, REDIS_COMMAND_TIMEOUT_MS } from '../../../src/redis/client.js';

const base = { type: 'redis' as const, url: 'redis://127.0.0.1:6379/0', keyPrefix: 'p:', instanceTimeoutSeconds: 15 };

test('redis client - the URL gives host, port, user, password and database; the key prefix applies; nothing waits on a Redis that is away', () => {
  const options = redisOptions({ ...base, url: 'redis://bridge:s%40cret@redis.example:6380/3' }, 'state');
  assert.deepEqual(
    [options.host, options.port, options.username, options.password, options.db, options.keyPrefix, options.connectionName],
    ['redis.example', 6380, 'bridge', 's@cret', 3, 'p:', 'state'],
  );
  assert.equal(options.enableOfflineQueue, false);
  assert.equal(options.autoResendUnfulfilledCommands, false);
  assert.equal(options.commandTimeout, REDIS_COMMAND_TIMEOUT_MS);
  assert.equal(options.tls, undefined);
  assert.equal(redisOptions({ ...base, url: 'redis://[::1]' }, 'x').host, '::1');
  assert.equal(redisOptions({ ...base, url: 'redis://h' }, 'x').db, 0);
});

test('redis client - rediss:// turns TLS on; sentinels replace the host and name the master', () => {
  assert.deepEqual(redisOptions({ ...base, url: 'rediss://h:6380/0' }, 'x').tls, {});
  const sentinel = redisOptions({ ...base, sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], sentinelName: 'mymaster' }, 'x');
  assert.deepEqual([sentinel.sentinels, sentinel.name, sentinel.host], [[{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], 'mymaster', undefined]);
});

test('redis client - unreadable TLS files are a BRIDGE_ERR_TLS_FILE naming the file; the password never shows in a redacted URL', () => {
  assert.throws(() => redisOptions({ ...base, url: 'rediss://h', tls: { ca: '/nonexistent/ca.pem' } }, 'x'), { code: 'BRIDGE_ERR_TLS_FILE', message: /CA file \/nonexistent\/ca\.pem/ });
  assert.equal(redactRedisUrl('redis://u:secret@h:1/2'), 'redis://u:***@h:1/2');
  assert.equal(redactRedisUrl('redis://h:1/2'), 'redis://h:1/2');
});
