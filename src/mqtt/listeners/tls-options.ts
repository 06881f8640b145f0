import { readFileSync } from 'node:fs';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { ListenError } from '../../errors.js';
import type { PeerIdentity } from './listener.js';

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string | undefined;
  readonly clientCertificates: 'none' | 'optional' | 'required';
}

/** TLS 1.2 at least; client certificates asked for (and, when required, insisted on) as configured. */
export function tlsOptions(files: TlsFiles, listener: string): TlsOptions {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ListenError(`${listener} listener cannot read its ${what} ${path}: ${(error as Error).message}`, { cause: error });
    }
  };
  return {
    cert: read('certificate', files.cert),
    key: read('key', files.key),
    ...(files.ca ? { ca: read('CA file', files.ca) } : {}),
    minVersion: 'TLSv1.2',
    requestCert: files.clientCertificates !== 'none',
    rejectUnauthorized: files.clientCertificates === 'required',
  };
}

/** The identity a verified client certificate gives; an unverified one gives none. */
export function peerOf(socket: TLSSocket): PeerIdentity {
  const address = socket.remoteAddress;
  if (!socket.authorized) return { address };
  const commonName = socket.getPeerCertificate()?.subject?.CN;
  return { address, certificateCommonName: typeof commonName === 'string' && commonName.length > 0 ? commonName : undefined };
}
