import { createServer, type AddressInfo } from 'node:net';
import { ListenError } from '../../errors.js';
import type { AcceptConnection, RunningListener } from './listener.js';
import { listen } from './listen.js';

export interface TcpListenerConfig {
  readonly host: string;
  readonly port: number;
}

export async function startTcpListener(config: TcpListenerConfig, accept: AcceptConnection): Promise<RunningListener> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    accept(socket, undefined, 'tcp');
  });
  try {
    await listen(server, config.port, config.host);
  } catch (error) {
    throw new ListenError(`tcp listener cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`, { cause: error });
  }
  const { port } = server.address() as AddressInfo;
  return {
    type: 'tcp',
    host: config.host,
    port,
    url: `mqtt://${formatHost(config.host)}:${port}`,
    // close() stops accepting at once; its callback would wait for every client to leave.
    stopAccepting: async () => {
      server.close();
    },
  };
}

export function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
