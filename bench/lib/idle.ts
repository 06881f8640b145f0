import { connect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

export interface IdleConnectionOptions {
  host: string;
  port: number;
  localAddress?: string;
  clientId: string;
  keepaliveSeconds: number;
}

/**
 * One idle MQTT 3.1.1 connection on a bare socket (idle clients need no client library): sends
 * CONNECT (clean session) and resolves with the socket once the server accepts it, or null when
 * the server refuses it, closes the socket or the connection fails.
 */
export function openIdleConnection(options: IdleConnectionOptions): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: options.host, port: options.port, localAddress: options.localAddress });
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let settled = false;
    const settle = (accepted: boolean) => {
      if (settled) return;
      settled = true;
      socket.off('data', parse);
      if (!accepted) socket.destroy();
      resolve(accepted ? socket : null);
    };
    const parse = (chunk: Buffer) => parser.parse(chunk);
    parser.on('packet', (packet: Packet) => settle(packet.cmd === 'connack' && packet.returnCode === 0));
    parser.on('error', () => settle(false));
    socket.on('error', () => settle(false));
    socket.once('close', () => settle(false));
    socket.on('data', parse);
    socket.once('connect', () =>
      socket.write(
        mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: options.clientId, keepalive: options.keepaliveSeconds }),
      ),
    );
  });
}
