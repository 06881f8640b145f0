import { createServer, type Server } from 'node:net';
import type { BridgeConfig, ListenerConfig } from '../../config/schema.js';
import { listen } from '../../util/listen.js';

/**
 * A port for each listener that says 0, free now on its host; null for the others. Under
 * node:cluster every worker's `listen(0)` would otherwise be a port of its own (or, matched by the
 * order of the calls, one shared by accident), so the primary picks them once and every worker
 * listens on those. All are held until every one is picked, so no two listeners get one port.
 */
export async function pickFreePorts(listeners: readonly ListenerConfig[]): Promise<Array<number | null>> {
  const held: Server[] = [];
  try {
    const ports: Array<number | null> = [];
    for (const listener of listeners) {
      if (listener.port !== 0) {
        ports.push(null);
        continue;
      }
      const server = createServer();
      held.push(server);
      ports.push(await listen(server, 0, listener.host));
    }
    return ports;
  } finally {
    await Promise.all(held.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/**
 * The configuration as a worker runs it: the listeners on the ports the primary picked, and no
 * HTTP endpoint (the primary serves `/metrics`, `/healthz` and `/readyz` for all the workers).
 */
export function workerConfig(config: BridgeConfig, ports: ReadonlyArray<number | null>): BridgeConfig {
  const listeners = config.mqtt.listeners.map((listener, index) => {
    const picked = ports[index];
    return listener.port === 0 && picked !== null && picked !== undefined ? { ...listener, port: picked } : listener;
  });
  return { ...config, mqtt: { ...config.mqtt, listeners }, http: { ...config.http, enabled: false } };
}
