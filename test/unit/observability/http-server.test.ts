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
