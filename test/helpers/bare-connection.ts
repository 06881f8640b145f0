import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { waitFor } from './amqp.js';
import type { Transport } from './bridge.js';
import { encodeRemainingLength as remainingLength } from '../../src/mqtt/packet-encoding.js';

/**
 * An MQTT connection on a bare socket, TCP or WebSocket (the handshake and the framing are
 * written here, RFC 6455), from a chosen local address (Linux routes all of 127/8 to lo). It can
 * announce a packet, or a WebSocket message, send part of it and never the rest: what a client
 * that means to hold the server's memory does.
 */
export class BareConnection {
  readonly received: Packet[] = [];
  closed = false;
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 });
  private readonly frames = new ServerFrameReader((payload) => this.parser.parse(payload), () => this.socket.destroy());

  private constructor(
    private readonly socket: Socket,
    private readonly transport: Transport,
    head: Buffer,
  ) {
    this.parser.on('packet', (packet) => this.received.push(packet));
    this.parser.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
    if (head.length > 0) this.read(head);
  }

  /** Opens a connection to `url` (mqtt://HOST:PORT or ws://HOST:PORT/PATH) from `localAddress`. */
  static async open(transport: Transport, url: string, localAddress = '127.0.0.1'): Promise<BareConnection> {
    const { hostname, port, pathname } = new URL(url);
    const socket = connect({ host: hostname, port: Number(port), localAddress });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    if (transport === 'tcp') return new BareConnection(socket, transport, Buffer.alloc(0));
    socket.write(
      [
        `GET ${pathname} HTTP/1.1`,
        `Host: ${hostname}:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Protocol: mqtt',
        '',
        '',
      ].join('\r\n'),
    );
    const head = await new Promise<Buffer>((resolve, reject) => {
      let response = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        response = Buffer.concat([response, chunk]);
        const end = response.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        const status = response.subarray(0, response.indexOf('\r\n')).toString();
        if (!status.startsWith('HTTP/1.1 101')) reject(new Error(`WebSocket upgrade refused: ${status}`));
        else resolve(response.subarray(end + 4));
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error('closed during the WebSocket upgrade')));
    });
    return new BareConnection(socket, transport, head);
  }

  /** MQTT bytes, over WebSocket as one whole message. */
  send(bytes: Buffer): void {
    this.socket.write(this.transport === 'ws' ? Buffer.concat([clientFrameHeader(bytes.length), bytes]) : bytes);
  }

  /**
   * The start of something announced bigger than what is sent: over TCP the bytes as they are
   * (an MQTT header announcing more than follows); over WebSocket a frame header announcing
   * `announced` payload bytes, then `bytes`.
   */
  sendPartial(bytes: Buffer, announced: number): void {
    this.socket.write(this.transport === 'ws' ? Buffer.concat([clientFrameHeader(announced), bytes]) : bytes);
  }

  /** More raw bytes on the socket (the rest of what sendPartial began); resolves once the socket took them, or it closed. */
  async sendMore(bytes: Buffer): Promise<void> {
    if (this.closed) return;
    if (this.socket.write(bytes)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.once('drain', done).once('close', done);
    });
  }

  /** Sends a CONNECT (clean session) and waits for the CONNACK: its return code, or null if the connection closed first. */
  async connect(clientId: string, keepalive = 60): Promise<number | null> {
    this.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive }));
    const connack = await this.nextOrClose('connack');
    return connack ? (connack as unknown as { returnCode: number }).returnCode : null;
  }

  /** The next packet of this kind not yet taken, or null if the connection closes first. */
  async nextOrClose(cmd: string, timeoutMs = 10_000): Promise<Packet | null> {
    await waitFor(() => this.closed || this.received.some((packet) => packet.cmd === cmd), `a ${cmd} packet or the end`, timeoutMs);
    const index = this.received.findIndex((packet) => packet.cmd === cmd);
    return index === -1 ? null : this.received.splice(index, 1)[0]!;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    if (this.transport === 'ws') this.frames.read(chunk);
    else this.parser.parse(chunk);
  }
}

/** An MQTT fixed header: the type byte (with its flags) and the remaining length [MQTT-2.2.3]. */
export function fixedHeader(typeByte: number, remaining: number): Buffer {
  return Buffer.concat([Buffer.from([typeByte]), remainingLength(remaining)]);
}

/**
 * The header of one final binary frame from a client announcing `length` payload bytes
 * [RFC 6455 5.2]: masked, as a client's must be, with the masking key 0, so the payload goes
 * as it is.
 */
export function clientFrameHeader(length: number): Buffer {
  const lengthBytes = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + 4);
  header[0] = 0x82;
  header[1] = 0x80 | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(length, 2);
  if (lengthBytes === 8) header.writeBigUInt64BE(BigInt(length), 2);
  return header;
}

/** Reads the server's frames (unmasked) and hands on the payload of data frames; a close frame ends the connection. */
class ServerFrameReader {
  private buffered = Buffer.alloc(0);

  constructor(
    private readonly onPayload: (payload: Buffer) => void,
    private readonly onClose: () => void,
  ) {}

  read(chunk: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    for (;;) {
      if (this.buffered.length < 2) return;
      const opcode = this.buffered[0]! & 0x0f;
      const short = this.buffered[1]! & 0x7f;
      const offset = short === 126 ? 4 : short === 127 ? 10 : 2;
      if (this.buffered.length < offset) return;
      const length = short === 126 ? this.buffered.readUInt16BE(2) : short === 127 ? Number(this.buffered.readBigUInt64BE(2)) : short;
      if (this.buffered.length < offset + length) return;
      const payload = this.buffered.subarray(offset, offset + length);
      this.buffered = this.buffered.subarray(offset + length);
      if (opcode === 0x08) return this.onClose();
      if (opcode < 0x08) this.onPayload(payload);
    }
  }
}
