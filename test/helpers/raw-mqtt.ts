import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type SecureContextOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import mqttPacket, { type IConnackPacket, type Packet } from 'mqtt-packet';
import WebSocket, { createWebSocketStream } from 'ws';
import { waitFor } from './amqp.js';
import type { Transport } from './bridge.js';

/**
 * An MQTT client that sends exactly the packets a test writes (duplicates, retransmitted
 * PUBREL, a dropped connection mid-flow) and records every packet it receives.
 */
export class RawMqttClient {
  readonly received: Packet[] = [];
  closed = false;

  private constructor(private readonly stream: Duplex, onClose: (listener: () => void) => void) {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet) => this.received.push(packet));
    stream.on('data', (chunk: Buffer) => parser.parse(chunk));
    onClose(() => {
      this.closed = true;
    });
    stream.on('error', () => {});
  }

  static async open(transport: Transport | 'tls' | 'wss', url: string, tls: SecureContextOptions & { rejectUnauthorized?: boolean } = {}): Promise<RawMqttClient> {
    const { stream, onClose } = await openStream(transport, url, tls);
    return new RawMqttClient(stream, onClose);
  }

  /** Waits for the next packet of this kind; null if the connection closes first. */
  async nextOrClose(cmd: string, timeoutMs = 10_000): Promise<Packet | null> {
    await waitFor(() => this.closed || this.received.some((packet) => packet.cmd === cmd), `a ${cmd} packet or the end`, timeoutMs);
    const index = this.received.findIndex((packet) => packet.cmd === cmd);
    return index === -1 ? null : this.received.splice(index, 1)[0]!;
  }

  send(packet: Record<string, unknown>): void {
    this.stream.write(mqttPacket.generate(packet as unknown as Packet));
  }

  /** Bytes as they are, for packets no encoder would produce. */
  sendRaw(bytes: Buffer): void {
    this.stream.write(bytes);
  }

  /** A well-formed CONNECT (clean session, keep-alive 60 s); the CONNACK is left to the test. */
  sendConnect(options: { clientId: string; username?: string; password?: string; will?: { topic: string; payload: Buffer; qos: 0 | 1 | 2 } }): void {
    this.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean: true,
      clientId: options.clientId,
      keepalive: 60,
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: Buffer.from(options.password) } : {}),
      ...(options.will ? { will: { ...options.will, retain: false } } : {}),
    });
  }

  async connect(clientId: string, clean = true): Promise<IConnackPacket> {
    // Encoded by hand: mqtt-packet refuses to write some CONNECTs a hostile client would send
    // (an empty client identifier with clean session 0).
    const id = Buffer.from(clientId, 'utf8');
    const body = Buffer.concat([
      Buffer.from([0, 4]),
      Buffer.from('MQTT'),
      Buffer.from([4, clean ? 0x02 : 0x00, 0, 60, id.length >> 8, id.length & 0xff]),
      id,
    ]);
    this.sendRaw(Buffer.concat([Buffer.from([0x10]), remainingLength(body.length), body]));
    return (await this.next('connack')) as IConnackPacket;
  }

  /** Waits for the next packet of this kind not yet taken by an earlier call. */
  async next(cmd: string, timeoutMs = 10_000): Promise<Packet> {
    await waitFor(() => this.received.some((packet) => packet.cmd === cmd), `a ${cmd} packet`, timeoutMs);
    const index = this.received.findIndex((packet) => packet.cmd === cmd);
    return this.received.splice(index, 1)[0]!;
  }

  count(cmd: string): number {
    return this.received.filter((packet) => packet.cmd === cmd).length;
  }

  destroy(): void {
    this.stream.destroy();
  }

  /** Stops reading from the connection, like a stuck device: the bridge's writes pile up. */
  stopReading(): void {
    this.stream.pause();
  }

  /** Reads again: what was buffered arrives, and then the end of the connection if it was closed. */
  resumeReading(): void {
    this.stream.resume();
  }
}

/** The variable-length "remaining length" of an MQTT fixed header [MQTT-2.2.3]. */
export function remainingLength(length: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}

interface OpenStream {
  stream: Duplex;
  /** The WebSocket stream wrapper emits no 'close' of its own, so closing is watched on what carries it. */
  onClose: (listener: () => void) => void;
}

function openStream(transport: Transport | 'tls' | 'wss', url: string, tls: SecureContextOptions & { rejectUnauthorized?: boolean }): Promise<OpenStream> {
  const parsed = new URL(url);
  if (transport === 'tls') {
    // Resolves once the socket is open even if the server then refuses the client certificate
    // (with TLS 1.3 that refusal comes after the handshake): the test sees the connection close.
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: parsed.hostname, port: Number(parsed.port), ...tls }, () =>
        resolve({ stream: socket, onClose: (listener) => socket.on('close', listener) }),
      );
      socket.once('error', reject);
    });
  }
  if (transport === 'tcp') {
    return new Promise((resolve, reject) => {
      const socket = netConnect(Number(parsed.port), parsed.hostname, () =>
        resolve({ stream: socket, onClose: (listener) => socket.on('close', listener) }),
      );
      socket.once('error', reject);
    });
  }
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, 'mqtt', transport === 'wss' ? tls : {});
    socket.once('open', () => resolve({ stream: createWebSocketStream(socket), onClose: (listener) => socket.on('close', listener) }));
    socket.once('error', reject);
  });
}
