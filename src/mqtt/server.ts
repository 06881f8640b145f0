import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { BridgeConfig, ListenerConfig } from '../config/schema.js';
import { ClientIdentities } from './client-identity.js';
import { createAuthenticate } from './hooks/authenticate.js';
import { createAuthorizePublish } from './hooks/authorize-publish.js';
import { createPublished } from './hooks/published.js';
import type { AcceptConnection, RunningListener } from './listeners/listener.js';
import { startTcpListener } from './listeners/tcp.js';
import { startWsListener } from './listeners/ws.js';
import { Qos2Forwards } from './qos2-forwards.js';
import type { PublishHandler } from './types.js';

export interface MqttServerOptions {
  config: BridgeConfig['mqtt'];
  handler: PublishHandler;
  logger: Logger;
}

/** The MQTT 3.1.1 server the devices talk to: one aedes broker carried by every listener. */
export class MqttServer {
  readonly broker: Aedes;
  private readonly identities: ClientIdentities;
  private running: RunningListener[] = [];

  private constructor(broker: Aedes, identities: ClientIdentities, logger: Logger) {
    this.broker = broker;
    this.identities = identities;
    broker.on('client', (client: Client) => logger.debug({ clientId: client.id }, 'client connected'));
    broker.on('clientDisconnect', (client: Client) => logger.debug({ clientId: client.id }, 'client disconnected'));
    broker.on('clientError', (client: Client, error: Error) => logger.debug({ clientId: client.id, err: error.message }, 'client error'));
    broker.on('connectionError', (_client: Client, error: Error) => logger.debug({ err: error.message }, 'connection error before CONNECT'));
  }

  static async create(options: MqttServerOptions): Promise<MqttServer> {
    const identities = new ClientIdentities();
    const qos2 = new Qos2Forwards();
    let broker: Aedes | null = null;
    broker = await Aedes.createBroker({
      maxClientsIdLength: options.config.maxClientIdLength,
      authenticate: createAuthenticate(identities),
      authorizePublish: createAuthorizePublish(options.handler, identities, qos2),
      published: createPublished(options.handler, identities, qos2, () => broker!),
    });
    return new MqttServer(broker, identities, options.logger);
  }

  get listeners(): readonly RunningListener[] {
    return this.running;
  }

  get connectedClients(): number {
    return this.broker.connectedClients;
  }

  /** Starts every listener; if one cannot bind, the others are stopped and the error thrown. */
  async listen(listeners: readonly ListenerConfig[]): Promise<readonly RunningListener[]> {
    const accept: AcceptConnection = (stream, request, listener) => {
      const client = this.broker.handle(stream, request);
      this.identities.set(client, { username: undefined, listener });
    };
    try {
      for (const listener of listeners) {
        const running = listener.type === 'tcp' ? await startTcpListener(listener, accept) : await startWsListener(listener, accept);
        this.running.push(running);
      }
    } catch (error) {
      await this.stopAccepting();
      throw error;
    }
    return this.running;
  }

  async stopAccepting(): Promise<void> {
    await Promise.all(this.running.map((listener) => listener.stopAccepting()));
  }

  /** Stops reading from every connected client, so no new publish arrives during shutdown. */
  pauseClients(): void {
    for (const client of Object.values((this.broker as unknown as { clients: Record<string, { pause(): void }> }).clients)) client.pause();
  }

  /** Disconnects every client and stops the broker. */
  close(): Promise<void> {
    return new Promise((resolve) => this.broker.close(() => resolve()));
  }
}
