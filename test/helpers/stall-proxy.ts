import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy between the bridge and RabbitMQ that a test can stall: while stalled it stops
 * reading in both directions, so bytes pile up in the kernel and nothing (publishes, confirms)
 * gets through, as with a congested or frozen network path. It can also cut every connection.
 */
export class StallProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private stalled = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort = 5672, targetHost = '127.0.0.1'): Promise<StallProxy> {
    let proxy: StallProxy | null = null;
    const server = createServer((client) => {
      const upstream = connect(targetPort, targetHost);
      const pair: [Socket, Socket] = [client, upstream];
      proxy!.pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      if (proxy!.stalled) {
        client.pause();
        upstream.pause();
      }
      const drop = () => {
        proxy!.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new StallProxy(server, (server.address() as AddressInfo).port);
    return proxy;
  }

  url(credentials = 'guest:guest'): string {
    return `amqp://${credentials}@127.0.0.1:${this.port}`;
  }

  stall(): void {
    this.stalled = true;
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  resume(): void {
    this.stalled = false;
    for (const [client, upstream] of this.pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.resume();
    }
  }

  /** Cuts every proxied connection (both sides see a reset). */
  cut(): void {
    for (const [client, upstream] of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
