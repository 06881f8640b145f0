import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { startHttpServer } from '../../../src/observability/http-server.js';

test('http server - a port in use is BRIDGE_ERR_HTTP_LISTEN naming the address (not the MQTT listeners)', async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as AddressInfo).port;
  try {
    await assert.rejects(startHttpServer({ host: '127.0.0.1', port, registry: new Registry(), readiness: () => ({ ready: true, reasons: [], degraded: [] }) }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'BRIDGE_ERR_HTTP_LISTEN');
      assert.match(error.message, new RegExp(`^http endpoint cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      return true;
    });
  } finally {
    blocker.close();
  }
});

test('http server - /readyz waits for a readiness that is a promise, and answers 500 when it fails', async () => {
  let answer: () => Promise<{ ready: boolean; reasons: string[]; degraded: string[] }> = async () => ({ ready: false, reasons: ['worker 2: starting'], degraded: [] });
  const server = await startHttpServer({ host: '127.0.0.1', port: 0, registry: new Registry(), readiness: () => answer() });
  try {
    const waiting = await fetch(`${server.url}/readyz`);
    assert.equal(waiting.status, 503);
    assert.deepEqual(await waiting.json(), { ready: false, reasons: ['worker 2: starting'], degraded: [] });
    answer = () => Promise.reject(new Error('no worker answered'));
    const failed = await fetch(`${server.url}/readyz`);
    assert.equal(failed.status, 500);
    assert.deepEqual(await failed.json(), { error: 'no worker answered' });
  } finally {
    await server.close();
  }
});

test('http server - /metrics serves whatever text the registry it is given makes (the primary aggregates the workers)', async () => {
  const registry = { contentType: Registry.PROMETHEUS_CONTENT_TYPE, metrics: async () => 'mqtt_amqp_bridge_workers{state="running"} 2\n' };
  const server = await startHttpServer({ host: '127.0.0.1', port: 0, registry, readiness: () => ({ ready: true, reasons: [], degraded: [] }) });
  try {
    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.headers.get('content-type'), Registry.PROMETHEUS_CONTENT_TYPE);
    assert.equal(await response.text(), 'mqtt_amqp_bridge_workers{state="running"} 2\n');
  } finally {
    await server.close();
  }
});
