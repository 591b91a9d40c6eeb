import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { UserError } from '../errors.js';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: readonly string[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

/** URL parameters read here and removed before node-postgres sees the URL. */
const TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat'] as const;

/**
 * node-postgres' reading of these parameters differs from libpq's (`require` verifies the
 * certificate like `verify-full`, and `PGSSLMODE=prefer` does too), so a URL written for psql
 * would fail against a server with a self-signed certificate. They are read here with libpq's
 * meaning, taken out of the URL, and handed to node-postgres as its explicit `ssl` option.
 *
 * Two deliberate differences remain, because node-postgres cannot fall back between plain and
 * TLS within one connection attempt: `prefer` (libpq's default) and `allow` connect without
 * TLS. Neither protects against an active attacker in libpq either; use `require` or stricter.
 */
export function takeTlsConfig(url: URL, env: NodeJS.ProcessEnv = process.env): false | ConnectionOptions {
  const params = new Map<string, string>();
  for (const name of TLS_PARAMS) {
    const value = url.searchParams.get(name);
    if (value !== null) params.set(name, value);
    url.searchParams.delete(name);
  }
  const mode = sslMode(params.get('sslmode') ?? env.PGSSLMODE, params.get('ssl'));
  if (mode === 'disable' || mode === 'allow' || mode === 'prefer') return false;

  const rootCert = params.get('sslrootcert') ?? env.PGSSLROOTCERT;
  const options: ConnectionOptions = {};
  const cert = params.get('sslcert') ?? env.PGSSLCERT;
  const key = params.get('sslkey') ?? env.PGSSLKEY;
  if (cert !== undefined) options.cert = readTlsFile(cert, 'sslcert');
  if (key !== undefined) options.key = readTlsFile(key, 'sslkey');

  if (rootCert === 'system') {
    // libpq refuses the system store with anything weaker than verify-full: any certificate a
    // public CA issued to anybody would otherwise be accepted.
    if (mode !== 'verify-full') {
      throw new UserError(`sslrootcert=system needs sslmode=verify-full, not ${mode} (database URL)`);
    }
    return options;
  }
  const rootFile = rootCert ?? defaultRootCert();
  if (mode === 'require') {
    // As in libpq: with a root certificate available, require checks the chain like verify-ca.
    // Unlike libpq, a sslrootcert that was named but cannot be read is an error, not a silent
    // downgrade to no verification.
    if (rootFile === undefined || (rootCert === undefined && !existsSync(rootFile))) return { ...options, rejectUnauthorized: false };
    return { ...options, ca: readTlsFile(rootFile, 'sslrootcert'), checkServerIdentity: () => undefined };
  }
  if (rootFile === undefined || (rootCert === undefined && !existsSync(rootFile))) {
    throw new UserError(
      `sslmode=${mode} needs the CA certificate that signed the server's certificate: add sslrootcert=/path/to/ca.crt to the database URL ` +
        `(or sslrootcert=system for the system's trusted CAs with verify-full), or use sslmode=require to encrypt without verification`,
    );
  }
  options.ca = readTlsFile(rootFile, 'sslrootcert');
  // verify-ca checks the chain but not the host name; verify-full is Node's default check.
  if (mode === 'verify-ca') options.checkServerIdentity = () => undefined;
  return options;
}

function sslMode(sslmode: string | undefined, ssl: string | undefined): SslMode {
  if (sslmode === undefined || sslmode === '') {
    // node-postgres' own `ssl=true` meant "TLS, verified"; keep that reading.
    if (ssl === 'true' || ssl === '1') return 'verify-full';
    return ssl === 'false' || ssl === '0' ? 'disable' : 'prefer';
  }
  // node-postgres' alias for libpq's require.
  if (sslmode === 'no-verify') return 'require';
  if (!SSL_MODES.includes(sslmode)) {
    throw new UserError(`sslmode=${sslmode} is not valid; use disable, allow, prefer, require, verify-ca or verify-full (database URL or PGSSLMODE)`);
  }
  return sslmode as SslMode;
}

/** libpq's default root certificate, ~/.postgresql/root.crt, when there is a home directory. */
function defaultRootCert(): string | undefined {
  try {
    return join(homedir(), '.postgresql', 'root.crt');
  } catch {
    return undefined;
  }
}

function readTlsFile(path: string, param: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UserError(`cannot read the ${param} file ${path} (${code}); fix the path in the database URL`, { cause: error });
  }
}
