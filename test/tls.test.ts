import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { checkPool, createPool } from '../src/db/connect.js';
import { connectRedis } from '../src/redis/connect.js';
import { install } from '../src/install/install.js';
import { MirrorDaemon } from '../src/daemon/daemon.js';
import { waitForEmptyJournal } from '../src/daemon/backlog.js';
import { verifyMirror, isClean } from '../src/verify/verify.js';
import { resolveConfig } from '../src/config/load.js';
import { parseTableName } from '../src/config/table-name.js';
import { makeCertificates, type Certificates } from './helpers/certs.js';
import { TestPgServer } from './helpers/pg-server.js';
import { TestRedisServer } from './helpers/redis-server.js';

// Passwords that cannot appear in any output by accident; `@` and `:` must be percent-encoded in a URL.
const PG_PASSWORD = 'pg-Secret:7f3e@x';
const REDIS_PASSWORD = 'redis-Secret-91c2';
const ACL_PASSWORD = 'acl-Secret-5d08';

let pgServer: TestPgServer;
let redisServer: TestRedisServer;
let redisCerts: Certificates;
let certDir: string;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'prm-redis-tls-'));
  redisCerts = makeCertificates(certDir);
  [pgServer, redisServer] = await Promise.all([
    TestPgServer.start({ password: PG_PASSWORD }),
    TestRedisServer.start(undefined, { tls: redisCerts, password: REDIS_PASSWORD, users: [{ name: 'mirror', password: ACL_PASSWORD }] }),
  ]);
});
afterAll(async () => {
  await Promise.all([pgServer?.stop(), redisServer?.stop()]);
  rmSync(certDir, { recursive: true, force: true });
});

/** Connects, and returns whether the session is encrypted (pg_stat_ssl); a connect failure rejects with its message. */
async function sessionSsl(url: string): Promise<boolean> {
  const pool = createPool(url, { max: 1 });
  try {
    await checkPool(pool, url);
    const result = await pool.query<{ ssl: string }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    return result.rows[0]?.ssl === 't';
  } finally {
    await pool.end();
  }
}

describe('PostgreSQL sslmode, as libpq reads it', () => {
  it('require encrypts without verifying the certificate (signed by a CA nobody passed)', async () => {
    expect(await sessionSsl(pgServer.url(PG_PASSWORD, 'sslmode=require'))).toBe(true);
  });

  it('no sslmode, disable, allow and prefer connect without TLS', async () => {
    for (const params of ['', 'sslmode=disable', 'sslmode=allow', 'sslmode=prefer']) {
      expect(await sessionSsl(pgServer.url(PG_PASSWORD, params)), params).toBe(false);
    }
  });

  it('verify-ca checks the chain against sslrootcert but not the host name', async () => {
    expect(await sessionSsl(pgServer.url(PG_PASSWORD, `sslmode=verify-ca&sslrootcert=${pgServer.certs.ca}`))).toBe(true);
    await expect(sessionSsl(pgServer.url(PG_PASSWORD, `sslmode=verify-ca&sslrootcert=${pgServer.certs.otherCa}`))).rejects.toThrow(
      /its TLS certificate was not accepted .*sslrootcert=/,
    );
  });

  it('verify-full checks the chain and the host name', async () => {
    expect(await sessionSsl(pgServer.url(PG_PASSWORD, `sslmode=verify-full&sslrootcert=${pgServer.certs.ca}`, { host: 'localhost' }))).toBe(true);
    // The certificate names localhost, not 127.0.0.1.
    await expect(sessionSsl(pgServer.url(PG_PASSWORD, `sslmode=verify-full&sslrootcert=${pgServer.certs.ca}`))).rejects.toThrow(
      /certificate is not for this host name .*verify-ca/,
    );
    // A self-signed (snakeoil-like) certificate is never accepted just because TLS was asked for.
    await expect(sessionSsl(pgServer.url(PG_PASSWORD, `sslmode=verify-full&sslrootcert=${pgServer.certs.otherCa}`, { host: 'localhost' }))).rejects.toThrow(
      /TLS certificate was not accepted/,
    );
    await expect(sessionSsl(pgServer.url(PG_PASSWORD, 'sslmode=verify-full', { host: 'localhost' }))).rejects.toThrow(/needs the CA certificate .*sslrootcert=/);
  });

  it('PGSSLMODE applies when the URL has no sslmode', async () => {
    const previous = process.env.PGSSLMODE;
    process.env.PGSSLMODE = 'require';
    try {
      expect(await sessionSsl(pgServer.url(PG_PASSWORD))).toBe(true);
      expect(await sessionSsl(pgServer.url(PG_PASSWORD, 'sslmode=disable'))).toBe(false);
    } finally {
      if (previous === undefined) delete process.env.PGSSLMODE;
      else process.env.PGSSLMODE = previous;
    }
  });

  it('a server that accepts a role only over TLS says so and names the fix', async () => {
    const admin = createPool(pgServer.url(PG_PASSWORD), { max: 1 });
    try {
      await admin.query(`CREATE ROLE tls_only LOGIN PASSWORD 'tls-Pass-33'`);
      await expect(sessionSsl(pgServer.url('tls-Pass-33', '', { user: 'tls_only' }))).rejects.toThrow(/no encryption.*sslmode=require/);
      expect(await sessionSsl(pgServer.url('tls-Pass-33', 'sslmode=require', { user: 'tls_only' }))).toBe(true);
    } finally {
      await admin.query('DROP ROLE IF EXISTS tls_only');
      await admin.end();
    }
  });

  it('refuses an unknown sslmode and sslrootcert=system with a weaker mode, in one line', async () => {
    await expect(sessionSsl(pgServer.url(PG_PASSWORD, 'sslmode=verify'))).rejects.toThrow(/sslmode=verify is not valid; use disable, allow, prefer, require, verify-ca or verify-full/);
    await expect(sessionSsl(pgServer.url(PG_PASSWORD, 'sslmode=require&sslrootcert=system'))).rejects.toThrow(/sslrootcert=system needs sslmode=verify-full/);
    await expect(sessionSsl(pgServer.url(PG_PASSWORD, 'sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt'))).rejects.toThrow(/cannot read the sslrootcert file \/nonexistent\/ca.crt \(ENOENT\)/);
  });
});

describe('Redis AUTH, ACL users and TLS', () => {
  it('logs in with the default user\'s password and with an ACL user, over TLS verified against tls_ca', async () => {
    const byPassword = await connectRedis(url(`:${REDIS_PASSWORD}@`));
    expect(await byPassword.call('ACL', 'WHOAMI')).toBe('default');
    byPassword.disconnect();
    const byUser = await connectRedis(url(`mirror:${ACL_PASSWORD}@`));
    expect(await byUser.call('ACL', 'WHOAMI')).toBe('mirror');
    byUser.disconnect();
  });

  it('a wrong or missing password is one line that names the fix, without the password', async () => {
    const wrong = connectRedis(url(`mirror:not-${ACL_PASSWORD}@`));
    await expect(wrong).rejects.toThrow(/^cannot log in to Redis at localhost:\d+: WRONGPASS .*check the user and password in --redis-url/);
    await expect(wrong).rejects.not.toThrow(ACL_PASSWORD);
    await expect(connectRedis(url(''))).rejects.toThrow(/cannot log in to Redis .*NOAUTH/);
  });

  it('refuses a certificate it cannot verify unless told otherwise', async () => {
    await expect(connectRedis(url(`:${REDIS_PASSWORD}@`, ''))).rejects.toThrow(/TLS certificate was not accepted .*tls_ca=/);
    await expect(connectRedis(url(`:${REDIS_PASSWORD}@`, `tls_ca=${redisCerts.otherCa}`))).rejects.toThrow(/TLS certificate was not accepted/);
    await expect(connectRedis(url(`:${REDIS_PASSWORD}@`, `tls_ca=${redisCerts.ca}`, '127.0.0.1'))).rejects.toThrow(/not for this host name .*tls_verify=ca/);
    for (const params of [`tls_ca=${redisCerts.ca}&tls_verify=ca`, 'tls_verify=none']) {
      const redis = await connectRedis(url(`:${REDIS_PASSWORD}@`, params, '127.0.0.1'));
      expect(await redis.ping()).toBe('PONG');
      redis.disconnect();
    }
  });

  it('rejects TLS parameters on a plain redis:// URL and a bad tls_verify', async () => {
    await expect(connectRedis(`redis://127.0.0.1:${redisServer.port}?tls_ca=${redisCerts.ca}`)).rejects.toThrow(/tls_ca apply to TLS connections only; use a rediss:\/\/ URL/);
    await expect(connectRedis(url(`:${REDIS_PASSWORD}@`, 'tls_verify=off'))).rejects.toThrow(/tls_verify=off is not valid/);
  });
});

describe('the daemon over TLS on both sides, with passwords', () => {
  it('mirrors inserts, updates and deletes, and verify finds no drift', async () => {
    const databaseUrl = pgServer.url(PG_PASSWORD, `sslmode=verify-full&sslrootcert=${pgServer.certs.ca}`, { host: 'localhost' });
    const redisUrl = url(`mirror:${ACL_PASSWORD}@`);
    const pool: pg.Pool = createPool(databaseUrl, { max: 2 });
    const redis = await connectRedis(redisUrl);
    let daemon: MirrorDaemon | undefined;
    try {
      await pool.query(`CREATE TABLE tls_items (id int PRIMARY KEY, name text)`);
      const config = resolveConfig({ prefix: 'tls:' }, { databaseUrl, redisUrl }, {});
      config.tables = [{ ...parseTableName('public.tls_items'), format: 'hash', prefix: 'tls:' }];
      await install(config, pool);
      daemon = await MirrorDaemon.start({ databaseUrl, redisUrl, schema: config.schema, batchSize: 100, pollIntervalMs: 500 });
      await pool.query(`INSERT INTO tls_items SELECT g, 'n' || g FROM generate_series(1, 200) g`);
      await pool.query(`UPDATE tls_items SET name = 'changed' WHERE id <= 50`);
      await pool.query(`DELETE FROM tls_items WHERE id > 150`);
      await waitForEmptyJournal(pool, config.schema, 30_000);
      expect(await redis.hgetall('tls:public.tls_items:7')).toEqual({ id: '7', name: 'changed' });
      // Every connection of the daemon (pool and LISTEN) is encrypted.
      const sessions = await pool.query<{ ssl: string }>(
        `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'pg-redis-mirror%' AND a.pid <> pg_backend_pid()`,
      );
      expect(sessions.rows.length).toBeGreaterThanOrEqual(2);
      expect(sessions.rows.every((r) => r.ssl === 't')).toBe(true);
      expect(isClean(await verifyMirror(pool, redis, { schema: config.schema }))).toBe(true);
    } finally {
      await daemon?.stop();
      redis.disconnect();
      await pool.end();
    }
  });
});

/** The test Redis, over TLS; `auth` is `user:password@`, `:password@` or empty. */
function url(auth: string, params = `tls_ca=${redisCerts.ca}`, host = 'localhost'): string {
  return `rediss://${auth}${host}:${redisServer.port}${params === '' ? '' : `?${params}`}`;
}
