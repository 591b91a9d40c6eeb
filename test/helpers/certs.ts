import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Certificates {
  /** The throwaway CA that signed the server certificate. */
  ca: string;
  /** A second CA that signed nothing here: trusting it must not make the server trusted. */
  otherCa: string;
  cert: string;
  key: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/**
 * A throwaway CA and a server certificate for `localhost` only (no IP address), so that
 * connecting to 127.0.0.1 passes a chain check but fails a host name check.
 */
export function makeCertificates(dir: string): Certificates {
  const path = (name: string): string => join(dir, name);
  for (const ca of ['ca', 'other-ca']) {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path(`${ca}.key`), '-out', path(`${ca}.crt`), '-days', '2', '-subj', `/CN=pg-redis-mirror test ${ca}`]);
  }
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', path('server.key'), '-out', path('server.csr'), '-subj', '/CN=localhost']);
  writeFileSync(path('ext.cnf'), 'subjectAltName=DNS:localhost\n');
  openssl(['x509', '-req', '-in', path('server.csr'), '-CA', path('ca.crt'), '-CAkey', path('ca.key'), '-CAcreateserial', '-out', path('server.crt'), '-days', '2', '-extfile', path('ext.cnf')]);
  return { ca: path('ca.crt'), otherCa: path('other-ca.crt'), cert: path('server.crt'), key: path('server.key') };
}
