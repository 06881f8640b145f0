import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { ListenError } from '../../errors.js';
import { formatHost, listen } from '../../util/listen.js';
import type { AcceptConnection, RunningListener } from './listener.js';
import { peerOf, tlsOptions, type TlsFiles } from './tls-options.js';
import type { IngressConnection } from '../ingress-budget.js';
import { MQTT_MAX_FIXED_HEADER_BYTES } from '../../protocol/mqtt.js';
import { WebSocketFrameGuard } from './websocket-frame-guard.js';

export interface WsListenerConfig {
  readonly host: string;
  readonly port: number;
  readonly path: string;
}

export interface WsMessageLimit {
  /** `mqtt.maxPacketBytes`: the largest remaining length of one MQTT packet. */
  readonly maxPacketBytes: number;
}

/** MQTT subprotocol names clients offer: `mqtt` (3.1.1) and `mqttv3.1`. */
const MQTT_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'];

/** Below this a message is never refused, whatever maxPacketBytes says: small batches cost nothing. */
const MIN_WS_MESSAGE_BYTES = 64 * 1024;

/**
 * The largest WebSocket message accepted. ws buffers a whole message before the MQTT side sees
 * a byte of it (its own default allows 100 MiB), so the packet size guard cannot stop a big one
 * in time: ws must refuse it from the frame header. One packet fills at most maxPacketBytes + 5
 * bytes; but a message may also carry several packets [MQTT-6.0.0-2] (mqtt.js in a browser sends
 * the writes it queued as one message), so twice that is allowed: the largest packet and as much
 * again besides.
 */
function wsMaxMessageBytes(maxPacketBytes: number): number {
  return Math.max(2 * (maxPacketBytes + MQTT_MAX_FIXED_HEADER_BYTES), MIN_WS_MESSAGE_BYTES);
}

/**
 * Follows the WebSocket frames on the connection's own socket, ahead of ws (whose listener comes
 * after this one): a message over the size limit is refused from its frame header, and what an
 * incomplete message holds is charged to the connection's ingress budget, before ws buffers it.
 */
function guardFrames(socket: Duplex, ingress: IngressConnection, maxMessageBytes: number): void {
  const guard = new WebSocketFrameGuard(maxMessageBytes);
  socket.prependListener('data', (chunk: Buffer) => {
    if (ingress.closed) return;
    const broken = guard.check(chunk);
    if (broken === null && ingress.follow(ingress.frames, guard)) return;
    if (broken !== null) ingress.refuse('packet_size', broken < 0 ? 'malformed WebSocket frame length' : `WebSocket message of ${broken} bytes announced`);
    socket.destroy();
  });
}

/** MQTT over WebSocket, or over secure WebSocket when `tls` is given. */
export async function startWsListener(config: WsListenerConfig, accept: AcceptConnection, limit: WsMessageLimit, tls?: TlsFiles): Promise<RunningListener> {
  const type = tls ? 'wss' : 'ws';
  const respond = (_request: IncomingMessage, response: ServerResponse) => {
    response.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    response.end(`MQTT over WebSocket: connect with a WebSocket client to ${config.path}\n`);
  };
  const maxMessageBytes = wsMaxMessageBytes(limit.maxPacketBytes);
  const http = tls ? createHttpsServer(tlsOptions(tls, type), respond) : createServer(respond);
  http.on('tlsClientError', () => {});
  const wss = new WebSocketServer({
    server: http,
    path: config.path,
    perMessageDeflate: false,
    // ws' own check, behind guardFrames' (which refuses such a message first, and counts it).
    maxPayload: maxMessageBytes,
    handleProtocols: (offered: Set<string>) => MQTT_SUBPROTOCOLS.find((name) => offered.has(name)) ?? false,
  });
  wss.on('connection', (socket, request: IncomingMessage) => {
    const stream = createWebSocketStream(socket);
    stream.on('error', () => socket.terminate());
    socket.on('error', () => {});
    const ingress = accept(stream, request, type, tls ? peerOf(request.socket as TLSSocket) : { address: request.socket.remoteAddress });
    if (ingress) guardFrames(request.socket, ingress, maxMessageBytes);
  });
  wss.on('error', () => {}); // surfaced through the http server
  let port: number;
  try {
    port = await listen(http, config.port, config.host);
  } catch (error) {
    throw new ListenError(`${type} listener cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`, { cause: error });
  }
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
