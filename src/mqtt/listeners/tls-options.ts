import { readFileSync } from 'node:fs';
import { createSecureContext, type TLSSocket, type TlsOptions } from 'node:tls';
import { TlsFileError } from '../../errors.js';
import type { PeerIdentity } from './listener.js';

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string | undefined;
  readonly clientCertificates: 'none' | 'optional' | 'required';
}

/**
 * TLS 1.2 at least; client certificates asked for (and, when required, insisted on) as configured.
 * Throws TlsFileError when a file cannot be read, or its contents cannot be used (not PEM, a key
 * that does not belong to the certificate), naming the files but never quoting them.
 */
export function tlsOptions(files: TlsFiles, listener: string): TlsOptions {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new TlsFileError(`${listener} listener cannot read its ${what} ${path}: ${(error as Error).message}`, { cause: error });
    }
  };
  const options: TlsOptions = {
    cert: read('certificate', files.cert),
    key: read('key', files.key),
    ...(files.ca ? { ca: read('CA file', files.ca) } : {}),
    minVersion: 'TLSv1.2',
    requestCert: files.clientCertificates !== 'none',
    rejectUnauthorized: files.clientCertificates === 'required',
  };
  try {
    createSecureContext(options);
  } catch (error) {
    const named = files.ca ? `certificate ${files.cert}, key ${files.key} and CA file ${files.ca}` : `certificate ${files.cert} and key ${files.key}`;
    throw new TlsFileError(`${listener} listener cannot use its ${named}: ${(error as Error).message}`, { cause: error });
  }
  return options;
}

/** The identity a verified client certificate gives; an unverified one gives none. */
export function peerOf(socket: TLSSocket): PeerIdentity {
  const address = socket.remoteAddress;
  if (!socket.authorized) return { address };
  const commonName = socket.getPeerCertificate()?.subject?.CN;
  return { address, certificateCommonName: typeof commonName === 'string' && commonName.length > 0 ? commonName : undefined };
}
