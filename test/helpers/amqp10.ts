import { spawn, type ChildProcess } from 'node:child_process';
import { connect as connectTcp } from 'node:net';
import rhea, { type Connection, type Delivery, type EventContext, type Message, type Receiver, type Sender, type ServerConnectionOptions } from 'rhea';
import { delay, waitFor } from './amqp.js';
import { freePort } from './bridge-process.js';

/** Debian's python3 with python3-qpid-proton (a pyenv `python3` on the PATH may lack it). */
const PROTON_PYTHON = '/usr/bin/python3';
const PROTON_BROKER = '/usr/share/proton/examples/python/broker.py';

export { freePort };

/**
 * Fails at once, with what to do, when RabbitMQ on 127.0.0.1:5672 does not speak AMQP 1.0 (its
 * rabbitmq_amqp1_0 plugin is off: it answers an AMQP 1.0 header with its 0-9-1 one), instead of
 * a bridge reconnecting for ever and a test waiting for a PUBACK that never comes.
 */
export async function assertRabbitSpeaksAmqp10(): Promise<void> {
  const answer = await new Promise<Buffer>((resolve, reject) => {
    const socket = connectTcp(5672, '127.0.0.1', () => socket.write(Buffer.from([0x41, 0x4d, 0x51, 0x50, 3, 1, 0, 0])));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('RabbitMQ on 127.0.0.1:5672 did not answer an AMQP 1.0 protocol header within 5 s'));
    }, 5000);
    socket.once('data', (data: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data.subarray(0, 8));
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  if (answer[4] !== 3 || answer[5] !== 1) {
    throw new Error(`RabbitMQ answered AMQP ${[...answer.subarray(4, 8)].join('-')} to AMQP 1.0: enable its plugin with \`rabbitmq-plugins enable rabbitmq_amqp1_0\` (.ci/run does)`);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The Apache Qpid Proton example broker (libqpid-proton11-dev-examples) on a port of its own:
 * an AMQP 1.0 broker that keeps a queue per address (in memory: killing it loses them).
 */
export class QpidBroker {
  private process: ChildProcess | null = null;

  /** Not started: `restart()` starts it on this port. */
  constructor(readonly port: number) {}

  get url(): string {
    return `amqp://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<QpidBroker> {
    const broker = new QpidBroker(await freePort());
    await broker.restart();
    return broker;
  }

  /** Starts it again on the same port (after `kill`). */
  async restart(): Promise<void> {
    const child = spawn(PROTON_PYTHON, [PROTON_BROKER, '-a', `127.0.0.1:${this.port}`], { stdio: 'ignore' });
    this.process = child;
    await waitFor(() => accepts(this.port), `the Qpid Proton broker on port ${this.port}`);
  }

  /** SIGKILL: every connection to it drops at once, and its queues are gone. */
  async kill(): Promise<void> {
    const child = this.process;
    this.process = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}

/** A received message with its delivery, for a test to settle as it likes. */
export interface Received {
  readonly message: Message;
  readonly delivery: Delivery;
}

/** An AMQP 1.0 client of the test's own (rhea): sends to and receives from addresses. */
export class Amqp10TestClient {
  private readonly receivers: Receiver[] = [];

  private constructor(readonly connection: Connection) {}

  static async connect(options: { host?: string; port: number; username?: string; password?: string }): Promise<Amqp10TestClient> {
    const container = rhea.create_container();
    const connection = container.connect({ host: options.host ?? '127.0.0.1', port: options.port, reconnect: false, username: options.username, password: options.password });
    connection.on('error', () => {});
    connection.on('disconnected', () => {});
    await new Promise<void>((resolve, reject) => {
      connection.once('connection_open', () => resolve());
      connection.once('connection_error', (context: EventContext) => reject(new Error(JSON.stringify(context.connection.error))));
    });
    return new Amqp10TestClient(connection);
  }

  /** Receives from an address; messages are accepted at once unless `manual`. */
  async receive(address: string, options: { manual?: boolean; credit?: number } = {}): Promise<Received[]> {
    const received: Received[] = [];
    const receiver = this.connection.open_receiver({ source: { address }, autoaccept: !options.manual, credit_window: options.credit ?? 100 });
    receiver.on('message', (context: EventContext) => received.push({ message: context.message!, delivery: context.delivery! }));
    await new Promise<void>((resolve) => receiver.once('receiver_open', () => resolve()));
    this.receivers.push(receiver);
    return received;
  }

  /** Sends and waits for the broker's outcome; resolves with it. */
  async send(address: string, message: Message): Promise<string> {
    const sender: Sender = this.connection.open_sender({ target: { address } });
    await new Promise<void>((resolve) => sender.once('sendable', () => resolve()));
    const outcome = await new Promise<string>((resolve) => {
      for (const name of ['accepted', 'rejected', 'released', 'modified']) sender.once(name, () => resolve(name));
      sender.send(message);
    });
    sender.close();
    return outcome;
  }

  async close(): Promise<void> {
    if (this.connection.is_closed()) return;
    await Promise.race([new Promise((resolve) => this.connection.once('connection_close', resolve).close()), delay(1_000)]);
  }
}

/** A transfer the peer received from the bridge, not yet settled unless the peer settles on its own. */
export interface PeerTransfer {
  readonly address: string;
  readonly message: Message;
  readonly delivery: Delivery;
}

export type PeerOutcome = 'accept' | 'reject' | 'release' | 'modify';

/**
 * An AMQP 1.0 peer the test controls (rhea's server side): it takes the bridge's sender links,
 * grants the credit the test says, settles transfers as the test says (or at once with
 * `autoSettle`), refuses the addresses it is told to, and can drop the connection.
 */
export class Amqp10Peer {
  readonly transfers: PeerTransfer[] = [];
  readonly connections: Connection[] = [];
  /** SASL as the bridge authenticated: mechanism and user. */
  readonly logins: Array<{ mechanism: string; username: string | undefined; password: string | undefined }> = [];
  /** Settles each transfer at once with this outcome; null holds them for the test. */
  autoSettle: PeerOutcome | null = 'accept';
  /** Credit each new receiver link (a bridge sender) gets at once. */
  initialCredit = 100;
  /** Credit given back per settled transfer (0: none, the credit runs out). */
  creditPerSettle = 1;
  /** Addresses whose links are refused (detached with amqp:not-found). */
  readonly refusedAddresses = new Set<string>();
  private readonly links: Receiver[] = [];
  /** The peer's sender on each address a bridge receiver attached to. */
  readonly senders = new Map<string, Sender>();

  private constructor(
    private readonly server: import('node:net').Server,
    readonly port: number,
  ) {}

  get url(): string {
    return `amqp://127.0.0.1:${this.port}`;
  }

  /**
   * `plain`: SASL PLAIN only (recorded in `logins`); `external`: TLS with client certificates
   * checked against `external.ca`, SASL EXTERNAL only (the connection opens only with it);
   * otherwise SASL ANONYMOUS.
   */
  static async start(options: { plain?: boolean; external?: { key: Buffer; cert: Buffer; ca: Buffer } } = {}): Promise<Amqp10Peer> {
    const container = rhea.create_container();
    let peer: Amqp10Peer | null = null;
    if (options.external) {
      // No mechanism of the container's own: rhea offers EXTERNAL alone to a client with a valid certificate.
    } else if (options.plain) {
      (container.sasl_server_mechanisms as { enable_plain(check: (user: string, password: string) => boolean): void }).enable_plain((username, password) => {
        peer?.logins.push({ mechanism: 'PLAIN', username, password });
        return true;
      });
    } else {
      (container.sasl_server_mechanisms as { enable_anonymous(): void }).enable_anonymous();
    }
    const listen = { port: 0, host: '127.0.0.1', receiver_options: { credit_window: 0, autoaccept: false } };
    const server = options.external
      ? container.listen({ ...listen, transport: 'tls', ...options.external, requestCert: true, rejectUnauthorized: true, enable_sasl_external: true } as ServerConnectionOptions)
      : container.listen(listen);
    await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', () => resolve())));
    peer = new Amqp10Peer(server, (server.address() as { port: number }).port);
    const self = peer;
    container.on('connection_open', (context: EventContext) => {
      self.connections.push(context.connection);
      if (!options.plain && self.logins.length < self.connections.length) {
        self.logins.push({ mechanism: options.external ? 'EXTERNAL' : 'ANONYMOUS', username: undefined, password: undefined });
      }
    });
    container.on('disconnected', () => {});
    container.on('error', () => {});
    container.on('receiver_open', (context: EventContext) => {
      const receiver = context.receiver!;
      const address = receiver.target.address;
      if (self.refusedAddresses.has(address)) {
        receiver.close({ condition: 'amqp:not-found', description: `no node "${address}"` });
        return;
      }
      self.links.push(receiver);
      receiver.add_credit(self.initialCredit);
    });
    // The bridge's receivers (downlink rules) are the peer's senders.
    container.on('sender_open', (context: EventContext) => {
      const sender = context.sender!;
      const address = (sender.source as { address: string }).address;
      if (self.refusedAddresses.has(address)) {
        sender.close({ condition: 'amqp:not-found', description: `no node "${address}"` });
        return;
      }
      self.senders.set(address, sender);
    });
    container.on('message', (context: EventContext) => {
      const transfer = { address: context.receiver!.target.address, message: context.message!, delivery: context.delivery! };
      self.transfers.push(transfer);
      if (self.autoSettle) self.settle(transfer, self.autoSettle);
    });
    return peer;
  }

  /** Settles one transfer; gives back `creditPerSettle` credit on its link. */
  settle(transfer: PeerTransfer, outcome: PeerOutcome): void {
    const { delivery } = transfer;
    if (outcome === 'accept') delivery.accept();
    else if (outcome === 'reject') delivery.reject({ condition: 'amqp:resource-limit-exceeded', description: 'queue full' });
    else if (outcome === 'release') delivery.release();
    else delivery.modified({ delivery_failed: true });
    if (this.creditPerSettle > 0) (delivery.link as Receiver).add_credit(this.creditPerSettle);
  }

  /** Sends to the bridge's receiver on `address` (once it has credit); resolves with the bridge's outcome. */
  async sendTo(address: string, message: Message): Promise<string> {
    await waitFor(() => this.senders.get(address)?.sendable() === true, `credit from the bridge's receiver on "${address}"`);
    const sender = this.senders.get(address)!;
    return new Promise<string>((resolve) => {
      const delivery = sender.send(message);
      for (const name of ['accepted', 'rejected', 'released', 'modified']) {
        sender.on(name, (context: EventContext) => {
          if (context.delivery === delivery) resolve(name);
        });
      }
    });
  }

  /** The addresses of the bridge's sender links open now. */
  openLinks(): string[] {
    return this.links.filter((link) => link.is_open()).map((link) => link.target.address);
  }

  /** Credit for every open link of the bridge's senders. */
  grant(credit: number): void {
    for (const link of this.links) if (link.is_open()) link.add_credit(credit);
  }

  /** Drops every connection at once (the socket, as a network cut or a crash does). */
  cut(): void {
    // With an error, so that rhea's side of it ends too (its idle timers with it).
    for (const connection of this.connections.splice(0)) (connection as unknown as { socket?: { destroy(error: Error): void } }).socket?.destroy(new Error('cut by the test'));
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
