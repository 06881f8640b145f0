import type { Client } from 'aedes';

/** What the bridge remembers about a connected client beyond what aedes keeps. */
export interface ClientIdentity {
  username: string | undefined;
  listener: string;
  /** Why the CONNECT's client identifier is refused (CONNACK return code 2), if it is. */
  clientIdProblem?: string;
  /** Where the connection comes from. */
  address?: string;
  /** The common name of the client certificate a TLS listener verified. */
  certificateCommonName?: string;
  /** The CONNECT had no client id, so the server made one up. */
  clientIdAssigned?: boolean;
  /** This connection's hold on its client id in the session registry, once authenticated. */
  claim?: number;
}

/** Per-server registry, keyed weakly by aedes client so closed clients are collected. */
export class ClientIdentities {
  private readonly identities = new WeakMap<Client, ClientIdentity>();

  set(client: Client, identity: ClientIdentity): void {
    this.identities.set(client, identity);
  }

  get(client: Client | null): ClientIdentity | undefined {
    return client ? this.identities.get(client) : undefined;
  }
}
