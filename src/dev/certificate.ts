/** A self-signed TLS certificate for the dev proxy (openssl), kept in the data directory. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function devCertificate(dataDir: string): { cert: string; key: string } | undefined {
  const certFile = join(dataDir, 'dev-proxy.crt');
  const keyFile = join(dataDir, 'dev-proxy.key');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    try {
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '365', '-subj', '/CN=localhost',
          '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
        { stdio: 'ignore' },
      );
    } catch {
      return undefined; // no openssl: the dev proxy answers SSLRequest with 'N' (loopback only)
    }
  }
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}
