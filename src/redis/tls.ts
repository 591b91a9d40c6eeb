import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { UserError } from '../errors.js';

/** URL parameters read here and removed before ioredis sees the URL (it would take them as options). */
const TLS_PARAMS = ['tls_ca', 'tls_cert', 'tls_key', 'tls_verify'] as const;
const VERIFY_MODES = ['full', 'ca', 'none'] as const;
type VerifyMode = (typeof VERIFY_MODES)[number];

/**
 * TLS options of a `rediss://` URL, taken out of it:
 * - `tls_ca=<file>`: the CA that signed the server's certificate (self-signed or private CA);
 *   without it, Node's trusted public CAs, so a self-signed certificate is refused.
 * - `tls_verify=full` (default: chain and host name), `ca` (chain only), `none` (no check at
 *   all; only when asked for, since it gives up protection against interception).
 * - `tls_cert=<file>` and `tls_key=<file>`: a client certificate, for servers with tls-auth-clients.
 * Returns undefined for a plain `redis://` URL (which must not carry these parameters).
 */
export function takeRedisTls(url: URL): ConnectionOptions | undefined {
  const params = new Map<string, string>();
  for (const name of TLS_PARAMS) {
    const value = url.searchParams.get(name);
    if (value !== null) params.set(name, value);
    url.searchParams.delete(name);
  }
  if (url.protocol !== 'rediss:') {
    if (params.size > 0) {
      throw new UserError(`${[...params.keys()].join(', ')} apply to TLS connections only; use a rediss:// URL (--redis-url or REDIS_URL)`);
    }
    return undefined;
  }
  const verify = params.get('tls_verify') ?? 'full';
  if (!(VERIFY_MODES as readonly string[]).includes(verify)) {
    throw new UserError(`tls_verify=${verify} is not valid; use full (default), ca or none (Redis URL)`);
  }
  const options: ConnectionOptions = {};
  const ca = params.get('tls_ca');
  const cert = params.get('tls_cert');
  const key = params.get('tls_key');
  if (ca !== undefined) options.ca = readTlsFile(ca, 'tls_ca');
  if (cert !== undefined) options.cert = readTlsFile(cert, 'tls_cert');
  if (key !== undefined) options.key = readTlsFile(key, 'tls_key');
  if ((cert === undefined) !== (key === undefined)) throw new UserError('tls_cert and tls_key go together: give both or neither (Redis URL)');
  switch (verify as VerifyMode) {
    case 'none':
      options.rejectUnauthorized = false;
      break;
    case 'ca':
      options.checkServerIdentity = () => undefined;
      break;
    case 'full':
      break;
  }
  return options;
}

function readTlsFile(path: string, param: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UserError(`cannot read the ${param} file ${path} (${code}); fix the path in the Redis URL`, { cause: error });
  }
}
