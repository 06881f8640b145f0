import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { ListenError } from '../../errors.js';
import type { AcceptConnection, RunningListener } from './listener.js';
import { listen } from './listen.js';
import { formatHost } from './tcp.js';
import { peerOf, tlsOptions, type TlsFiles } from './tls-options.js';

export interface WsListenerConfig {
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

/** MQTT subprotocol names clients offer: `mqtt` (3.1.1) and `mqttv3.1`. */
const MQTT_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

export async function startWsListener(config: WsListenerConfig, accept: AcceptConnection, tls?: TlsFiles): Promise<RunningListener> {
  const type = tls ? 'wss' : 'ws';
  const respond = (_request: IncomingMessage, response: ServerResponse) => {
    response.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    response.end(`MQTT over WebSocket: connect with a WebSocket client to ${config.path}\n`);
  };
  const http = tls ? createHttpsServer(tlsOptions(tls, type), respond) : createServer(respond);
  http.on('tlsClientError', () => {});
  const wss = new WebSocketServer({
    server: http,
    path: config.path,
    perMessageDeflate: false,
    handleProtocols: (offered: Set<string>) => MQTT_SUBPROTOCOLS.find((name) => offered.has(name)) ?? false,
  });
  wss.on('connection', (socket, request: IncomingMessage) => {
    const stream = createWebSocketStream(socket);
    stream.on('error', () => socket.terminate());
    accept(stream, request, type, tls ? peerOf(request.socket as TLSSocket) : { address: request.socket.remoteAddress });
  });
  wss.on('error', () => {}); // surfaced through the http server
  try {
    await listen(http, config.port, config.host);
  } catch (error) {
    throw new ListenError(`${type} listener cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`, { cause: error });
  }
  const { port } = http.address() as AddressInfo;
  return {
    type,
    host: config.host,
    port,
    url: `${type}://${formatHost(config.host)}:${port}${config.path}`,
    stopAccepting: async () => {
      wss.close();
      http.close();
    },
    ...(tls ? { reloadCertificates: () => (http as ReturnType<typeof createHttpsServer>).setSecureContext(tlsOptions(tls, type)) } : {}),
  };
}
