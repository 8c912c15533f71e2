import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** A certificate made for a test: PEM files and the CA that verifies it (itself). */
export interface TestCertificate {
  certFile: string;
  keyFile: string;
  /** The certificate is self-signed: it is its own CA. */
  caFile: string;
}

/**
 * Makes a self-signed certificate for 127.0.0.1 and localhost in `dir`
 * with the `openssl` binary (valid one day, RSA 2048, no passphrase).
 */
export async function makeSelfSignedCertificate(dir: string): Promise<TestCertificate> {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '1',
    '-keyout', keyFile, '-out', certFile,
    '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]).catch((err: unknown) => {
    throw new Error(`openssl could not make a test certificate (apt-get install -y openssl): ${(err as Error).message}`);
  });
  return { certFile, keyFile, caFile: certFile };
}
