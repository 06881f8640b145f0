import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { pickFreePorts, workerConfig } from '../../../../src/cli/workers/ports.js';
import { configSchema, type BridgeConfig } from '../../../../src/config/schema.js';
import { listen } from '../../../../src/util/listen.js';

const config = configSchema.parse({
  mqtt: {
    listeners: [
      { type: 'tcp', host: '127.0.0.1', port: 0 },
      { type: 'tcp', host: '127.0.0.1', port: 1884 },
      { type: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
    ],
    persistence: { type: 'redis' },
  },
  http: { port: 9102 },
}) as BridgeConfig;

test('pickFreePorts - a distinct free port for each listener on port 0, null for the others', async () => {
  const ports = await pickFreePorts(config.mqtt.listeners);
  assert.equal(ports.length, 3);
  assert.equal(ports[1], null);
  const [tcp, , ws] = ports as [number, null, number];
  assert.ok(tcp > 0 && ws > 0);
  assert.notEqual(tcp, ws);
  // Free again once picked: the workers bind them.
  for (const port of [tcp, ws]) {
    const server = createServer();
    assert.equal(await listen(server, port, '127.0.0.1'), port);
    server.close();
  }
});

test('workerConfig - the listeners on the picked ports, no HTTP endpoint of its own, the rest as it was', () => {
  const adjusted = workerConfig(config, [40001, null, 40002]);
  assert.deepEqual(
    adjusted.mqtt.listeners.map((listener) => listener.port),
    [40001, 1884, 40002],
  );
  assert.equal(adjusted.http.enabled, false);
  assert.equal(adjusted.http.port, 9102);
  assert.deepEqual({ ...adjusted, mqtt: config.mqtt, http: config.http }, config);
  assert.equal(config.mqtt.listeners[0]!.port, 0, 'the configuration given is not changed');
});
