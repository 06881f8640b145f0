import type { AddressInfo } from 'node:net';
import { createServer } from 'node:tls';
import { ListenError } from '../../errors.js';
import type { AcceptConnection, RunningListener } from './listener.js';
import { listen } from './listen.js';
import { formatHost } from './tcp.js';
import { peerOf, tlsOptions, type TlsFiles } from './tls-options.js';

export interface TlsListenerConfig extends TlsFiles {
  readonly host: string;
  readonly port: number;
}

export async function startTlsListener(config: TlsListenerConfig, accept: AcceptConnection): Promise<RunningListener> {
  const server = createServer(tlsOptions(config, 'tls'), (socket) => {
    socket.setNoDelay(true);
    accept(socket, undefined, 'tls', peerOf(socket));
  });
  server.on('tlsClientError', () => {}); // a failed handshake closes that socket; nothing else to do
  try {
    await listen(server, config.port, config.host);
  } catch (error) {
    throw new ListenError(`tls listener cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`, { cause: error });
  }
  const { port } = server.address() as AddressInfo;
  return {
    type: 'tls',
    host: config.host,
    port,
    url: `mqtts://${formatHost(config.host)}:${port}`,
    stopAccepting: async () => {
      server.close();
    },
    reloadCertificates: () => server.setSecureContext(tlsOptions(config, 'tls')),
  };
}
