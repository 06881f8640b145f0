import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { HttpListenError } from '../errors.js';
import { formatHost, listen } from '../util/listen.js';

export interface Readiness {
  ready: boolean;
  /** Why not, for the 503 body. */
  reasons: string[];
  /**
   * What works only in part although the bridge is ready: exchanges and queues RabbitMQ refuses,
   * with the rules that wait for them (the others flow, so the instance stays in the load balancer).
   */
  degraded: string[];
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** What `/metrics` serves: a bridge's registry, or (`run --workers N`) the workers' aggregated. */
  registry: Pick<Registry, 'metrics' | 'contentType'>;
  /** What `/readyz` answers (asked of the workers, with `run --workers N`). */
  readiness: () => Readiness | Promise<Readiness>;
}

export interface RunningHttpServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * `/metrics` (Prometheus text format), `/healthz` (200 while the process serves) and `/readyz`
 * (200 when every listener is up and RabbitMQ is connected, else 503 with the reasons as JSON;
 * either way with what RabbitMQ refuses under `degraded`). Throws HttpListenError when it cannot listen.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const json = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(`${JSON.stringify(body)}\n`);
  };
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      json(response, 405, { error: 'only GET' });
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => {
          response.writeHead(200, { 'content-type': options.registry.contentType });
          response.end(text);
        },
        (error: Error) => json(response, 500, { error: error.message }),
      );
      return;
    }
    if (path === '/healthz') {
      json(response, 200, { status: 'ok' });
      return;
    }
    if (path === '/readyz') {
      Promise.resolve(options.readiness()).then(
        (readiness) => json(response, readiness.ready ? 200 : 503, readiness),
        (error: Error) => json(response, 500, { error: error.message }),
      );
      return;
    }
    json(response, 404, { error: 'not found', paths: ['/metrics', '/healthz', '/readyz'] });
  });
  let port: number;
  try {
    port = await listen(server, options.port, options.host);
  } catch (error) {
    throw new HttpListenError(`http endpoint cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, { cause: error });
  }
  return {
    port,
    url: `http://${formatHost(options.host)}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
