import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkRedisPersistence, RedisPersistenceBase, redisPersistenceVersion } from '../../../../src/mqtt/redis/persistence-redis-internals.js';

test('aedes-persistence-redis internals - the installed version has what the bridge relies on', async () => {
  assert.match(redisPersistenceVersion(), /^\d+\.\d+\.\d+/);
  await checkRedisPersistence();
});

test('aedes-persistence-redis internals - a version without the async setup, or matching subscriptions in Redis, is refused naming its version', async () => {
  class CallbackSetup extends (RedisPersistenceBase as unknown as new (options: object) => object) {}
  Object.defineProperty(CallbackSetup.prototype, 'setup', { value: function setup() {} });
  await assert.rejects(checkRedisPersistence(CallbackSetup), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'BRIDGE_ERR_DEPENDENCY');
    assert.match(error.message, new RegExp(`aedes-persistence-redis ${redisPersistenceVersion().replace(/\./g, '\\.')} lacks .*an async setup\\(\\)`));
    return true;
  });
  class InRedis extends (RedisPersistenceBase as unknown as new (options: { conn: { smembers(key: string): Promise<string[]> } }) => object) {
    private readonly db: { smembers(key: string): Promise<string[]> };
    constructor(options: { conn: { smembers(key: string): Promise<string[]> } }) {
      super(options);
      this.db = options.conn;
    }
    async subscriptionsByTopic(topic: string) {
      return this.db.smembers(`subscribers:${topic}`);
    }
  }
  await assert.rejects(checkRedisPersistence(InRedis), /subscriptionsByTopic\(\) answered from memory \(it sent smembers\)/);
});
