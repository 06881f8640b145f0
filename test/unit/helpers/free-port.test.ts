import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freePort } from '../../helpers/bridge-process.js';

test('freePort - a port below the ephemeral range, free to listen on, so that listen(0) elsewhere cannot take it meanwhile', async () => {
  const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  for (const port of ports) {
    assert.ok(port >= 1024 && port < ephemeralStart, `${port} is below ${ephemeralStart}`);
  }
  // What listen(0) hands out meanwhile is from the ephemeral range, so never one of those.
  const servers = await Promise.all(
    Array.from({ length: 50 }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  try {
    for (const server of servers) {
      const { port } = server.address() as { port: number };
      assert.ok(!ports.includes(port), `listen(0) gave ${port}`);
    }
    const port = ports[0]!;
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
});
