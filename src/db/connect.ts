import { userInfo } from 'node:os';
import pg from 'pg';
import { UserError } from '../errors.js';
import { describePgError } from './errors.js';
import { takeTlsConfig } from './tls.js';

/**
 * Every value is read as PostgreSQL's own text form: node-postgres would otherwise turn
 * timestamps into Date and lose numeric digits. (Arrays the tool needs come as JSON text.)
 */
const identity = (value: string): string => value;
export const textTypes: pg.CustomTypesConfig = { getTypeParser: () => identity };

/**
 * Session settings that make type output canonical, so the daemon, sync and verify print a
 * value the same way whatever the server's defaults are (the trigger functions pin the same
 * settings for key types whose text depends on them).
 */
export const CANONICAL_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ['DateStyle', 'ISO, MDY'],
  ['IntervalStyle', 'postgres'],
  ['TimeZone', 'UTC'],
  ['extra_float_digits', '1'],
  ['bytea_output', 'hex'],
];

/**
 * Startup `options`, so the settings hold from the first query of every connection. node-postgres
 * decodes text as UTF-8, so that is what the server must send whatever its own encoding.
 */
/**
 * TCP keepalives on the server's side: a daemon that vanished without closing its connection
 * (host down, network cut) has its session ended within about 25 s, which frees its leader
 * lock for a standby. (Writes it still had in flight are refused by the fencing token.)
 */
const KEEPALIVES: ReadonlyArray<readonly [string, string]> = [
  ['tcp_keepalives_idle', '10'],
  ['tcp_keepalives_interval', '5'],
  ['tcp_keepalives_count', '3'],
];

const SETTINGS_OPTIONS = [...CANONICAL_SETTINGS, ['client_encoding', 'UTF8'], ...KEEPALIVES]
  .map(([name, value]) => `-c ${name}=${value!.replace(/ /g, '')}`)
  .join(' ');

/** Every connection (pool, LISTEN, demo) is configured here, so sslmode means the same everywhere. */
export function clientConfig(databaseUrl: string, applicationName = 'pg-redis-mirror'): pg.ClientConfig {
  const url = parseDatabaseUrl(databaseUrl);
  const ssl = takeTlsConfig(url);
  return { connectionString: url.toString(), ssl, application_name: applicationName, types: textTypes };
}

/**
 * Like libpq, a URL without a user (and no PGUSER) means the operating-system user;
 * node-postgres would read $USER, which service managers and CI often leave unset.
 */
function withDefaultUser(url: URL): void {
  if (process.env.PGUSER !== undefined || process.env.USER !== undefined || url.username !== '') return;
  url.username = encodeURIComponent(userInfo().username);
}

/** The URL with the canonical settings added to its startup options (kept after any of its own). */
function withSettings(url: URL): void {
  const own = url.searchParams.get('options');
  url.searchParams.set('options', own === null ? SETTINGS_OPTIONS : `${own} ${SETTINGS_OPTIONS}`);
}

/**
 * The URL node-postgres gets: default user, canonical settings, and no TLS parameters (those
 * become the `ssl` option, see takeTlsConfig).
 */
export function connectionString(databaseUrl: string): string {
  const url = parseDatabaseUrl(databaseUrl);
  takeTlsConfig(url);
  return url.toString();
}

function parseDatabaseUrl(databaseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new UserError(`database URL is not a valid URL; use postgres://user@host:port/database (--database-url or DATABASE_URL)`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new UserError(`database URL must start with postgres:// or postgresql://, not ${url.protocol}// (--database-url or DATABASE_URL)`);
  }
  withDefaultUser(url);
  withSettings(url);
  return url;
}

export function createPool(databaseUrl: string, options: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(databaseUrl, options.applicationName), max: options.max ?? 4 });
  // An idle client that loses its server must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

/** Fails with a clear UserError when PostgreSQL cannot be reached or logged into. */
export async function checkPool(pool: pg.Pool, databaseUrl: string): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    throw describePgError(error, databaseUrl);
  }
}

