import { connect, type AddressInfo } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';

/**
 * A TLS-terminating proxy in front of the plain RabbitMQ: the bridge talks amqps to it (and
 * must present a client certificate from `ca`), it talks plain AMQP to 127.0.0.1:5672. So the
 * bridge's TLS client code runs against the real broker without reconfiguring RabbitMQ.
 */
export class TlsTerminatingProxy {
  /** The common names of the client certificates that connected. */
  readonly clientNames: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(options: { cert: Buffer; key: Buffer; ca: Buffer; targetPort?: number }): Promise<TlsTerminatingProxy> {
    let proxy: TlsTerminatingProxy | null = null;
    const server = createServer({ cert: options.cert, key: options.key, ca: options.ca, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
      proxy!.clientNames.push(String(socket.getPeerCertificate().subject?.CN));
      const upstream = connect(options.targetPort ?? 5672, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      const close = () => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new TlsTerminatingProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
