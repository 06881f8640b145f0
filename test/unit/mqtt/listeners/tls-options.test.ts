import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tlsOptions } from '../../../../src/mqtt/listeners/tls-options.js';
import { makeCertificates } from '../../../helpers/certs.js';

const certs = makeCertificates('sensor-1');
const files = (overrides: Partial<{ cert: string; key: string; ca: string }>) => ({
  cert: certs.serverCert,
  key: certs.serverKey,
  clientCertificates: 'none' as const,
  ...overrides,
});

/** The code and message tlsOptions throws with. */
function failure(overrides: Partial<{ cert: string; key: string; ca: string }>): { code: unknown; message: string } {
  try {
    tlsOptions(files(overrides), 'tls');
  } catch (error) {
    return { code: (error as { code?: unknown }).code, message: (error as Error).message };
  }
  assert.fail('tlsOptions did not throw');
}

test('tlsOptions - the certificate, key and CA of a listener are read, and TLS 1.2 is the least version', () => {
  const options = tlsOptions(files({ ca: certs.ca }), 'wss');
  assert.deepEqual(options.cert, readFileSync(certs.serverCert));
  assert.deepEqual(options.key, readFileSync(certs.serverKey));
  assert.deepEqual(options.ca, readFileSync(certs.ca));
  assert.equal(options.minVersion, 'TLSv1.2');
});

test('tlsOptions - a file that cannot be read is BRIDGE_ERR_TLS_FILE naming the listener, the file and why', () => {
  const missing = join(certs.folder, 'missing.key');
  const { code, message } = failure({ key: missing });
  assert.equal(code, 'BRIDGE_ERR_TLS_FILE');
  assert.match(message, new RegExp(`^tls listener cannot read its key ${missing.replace(/[.]/g, '\\.')}: ENOENT`));
  assert.equal(failure({ ca: join(certs.folder, 'no-ca.pem') }).code, 'BRIDGE_ERR_TLS_FILE');
});

test('tlsOptions - a key of another certificate, or a file that is not PEM, is BRIDGE_ERR_TLS_FILE and quotes no key', () => {
  const mismatch = failure({ key: certs.clientKey });
  assert.equal(mismatch.code, 'BRIDGE_ERR_TLS_FILE');
  assert.equal(mismatch.message.startsWith(`tls listener cannot use its certificate ${certs.serverCert} and key ${certs.clientKey}: `), true, mismatch.message);
  assert.match(mismatch.message, /key values mismatch/);
  const notPem = join(certs.folder, 'not-pem.key');
  writeFileSync(notPem, 'not a key\n');
  assert.equal(failure({ key: notPem }).code, 'BRIDGE_ERR_TLS_FILE');
  const keyLines = readFileSync(certs.clientKey, 'utf8').split('\n').filter((line) => line.length > 20 && !line.startsWith('-----'));
  for (const line of keyLines) assert.ok(!mismatch.message.includes(line), 'the message quotes the key');
});
