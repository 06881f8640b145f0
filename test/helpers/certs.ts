import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificates {
  folder: string;
  /** Paths to PEM files. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCert: string;
  rogueKey: string;
  /** Contents, for clients. */
  read(path: string): Buffer;
}

function openssl(folder: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: folder, stdio: 'pipe' });
}

/** A CA, a server certificate for localhost/127.0.0.1, a client certificate (CN=`clientName`) and one from another CA. */
export function makeCertificates(clientName: string): TestCertificates {
  const folder = mkdtempSync(join(tmpdir(), 'bridge-certs-'));
  const key = (name: string) => openssl(folder, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', name);
  const selfSigned = (keyFile: string, certFile: string, cn: string) =>
    openssl(folder, 'req', '-x509', '-new', '-key', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${cn}`);
  const signed = (keyFile: string, certFile: string, cn: string, caCert: string, caKey: string, extensions: string) => {
    openssl(folder, 'req', '-new', '-key', keyFile, '-out', `${certFile}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(folder, `${certFile}.ext`), extensions);
    openssl(folder, 'x509', '-req', '-in', `${certFile}.csr`, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', `${certFile}.ext`);
  };
  key('ca.key');
  selfSigned('ca.key', 'ca.pem', 'bridge test CA');
  key('server.key');
  signed('server.key', 'server.pem', 'localhost', 'ca.pem', 'ca.key', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  key('client.key');
  signed('client.key', 'client.pem', clientName, 'ca.pem', 'ca.key', 'extendedKeyUsage=clientAuth\n');
  key('rogue-ca.key');
  selfSigned('rogue-ca.key', 'rogue-ca.pem', 'rogue CA');
  key('rogue.key');
  signed('rogue.key', 'rogue.pem', clientName, 'rogue-ca.pem', 'rogue-ca.key', 'extendedKeyUsage=clientAuth\n');
  const at = (name: string) => join(folder, name);
  return {
    folder,
    ca: at('ca.pem'),
    serverCert: at('server.pem'),
    serverKey: at('server.key'),
    clientCert: at('client.pem'),
    clientKey: at('client.key'),
    rogueCert: at('rogue.pem'),
    rogueKey: at('rogue.key'),
    read: (path) => readFileSync(path),
  };
}
