import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { IngressConnection } from '../ingress-budget.js';

/** What a TLS listener learned of the client: the common name of a certificate it verified. */
export interface PeerIdentity {
  readonly certificateCommonName?: string | undefined;
  /** Where the connection comes from. */
  readonly address?: string | undefined;
}

/**
 * Hands a new connection's byte stream to the MQTT server; returns the connection's share of the
 * ingress budgets (for a transport that buffers bytes of its own to charge), or null if refused.
 */
export type AcceptConnection = (stream: Duplex, request: IncomingMessage | undefined, listener: string, peer?: PeerIdentity) => IngressConnection | null;

export interface RunningListener {
  readonly type: 'tcp' | 'ws' | 'tls' | 'wss';
  readonly host: string;
  /** The bound port (the real one when the config said 0). */
  readonly port: number;
  /** Where clients connect, e.g. `mqtt://0.0.0.0:1883` or `ws://0.0.0.0:8083/mqtt`. */
  readonly url: string;
  /** Stops accepting new connections; connected clients stay. */
  stopAccepting(): Promise<void>;
  /** TLS listeners: reads the certificate, key and CA files again; new connections use them. */
  reloadCertificates?(): void;
}
