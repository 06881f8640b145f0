import { createServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { ListenError } from '../../errors.js';
import { formatHost, listen } from '../../util/listen.js';
import type { AcceptConnection, RunningListener } from './listener.js';
import { peerOf, tlsOptions, type TlsFiles } from './tls-options.js';

export interface TcpListenerConfig {
  readonly host: string;
  readonly port: number;
}

/** MQTT over TCP, or over TLS when `tls` is given. */
export async function startTcpListener(config: TcpListenerConfig, accept: AcceptConnection, tls?: TlsFiles): Promise<RunningListener> {
  const type = tls ? 'tls' : 'tcp';
  const onConnection = (socket: Socket) => {
    socket.setNoDelay(true);
    accept(socket, undefined, type, tls ? peerOf(socket as TLSSocket) : { address: socket.remoteAddress });
  };
  const server = tls ? createTlsServer(tlsOptions(tls, type), onConnection) : createServer(onConnection);
  server.on('tlsClientError', () => {}); // a failed handshake closes that socket; nothing else to do
  let port: number;
  try {
    port = await listen(server, config.port, config.host);
  } catch (error) {
    throw new ListenError(`${type} listener cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`, { cause: error });
  }
  return {
    type,
    host: config.host,
    port,
    url: `${tls ? 'mqtts' : 'mqtt'}://${formatHost(config.host)}:${port}`,
    // close() stops accepting at once; its callback would wait for every client to leave.
    stopAccepting: async () => {
      server.close();
    },
    ...(tls ? { reloadCertificates: () => (server as TlsServer).setSecureContext(tlsOptions(tls, type)) } : {}),
  };
}
