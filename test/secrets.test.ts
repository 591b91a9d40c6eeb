import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../src/db/connect.js';
import { runCli, spawnCli, type RunResult } from './helpers/cli.js';
import { TestPgServer } from './helpers/pg-server.js';
import { TestRedisServer } from './helpers/redis-server.js';
import { waitUntil } from './helpers/scratch.js';

// Distinctive texts, so that finding one in the output can only mean a leak. The PostgreSQL
// password holds `@` and `:` (percent-encoded in the URL); both spellings must stay hidden.
const PG_PASSWORD = 'pgPw:leak@7f3e';
const REDIS_PASSWORD = 'redisPwLeak91c2';
const WRONG = 'wrongPwLeak5d08';
const SECRETS = [PG_PASSWORD, encodeURIComponent(PG_PASSWORD), 'leak@7f3e', REDIS_PASSWORD, WRONG];

let pgServer: TestPgServer;
let redisServer: TestRedisServer;
let databaseUrl: string;
let redisUrl: string;

beforeAll(async () => {
  [pgServer, redisServer] = await Promise.all([TestPgServer.start({ password: PG_PASSWORD }), TestRedisServer.start(undefined, { password: REDIS_PASSWORD })]);
  databaseUrl = pgServer.url(PG_PASSWORD);
  redisUrl = `redis://:${REDIS_PASSWORD}@127.0.0.1:${redisServer.port}`;
  const pool = createPool(databaseUrl, { max: 1 });
  await pool.query(`CREATE TABLE secret_items (id int PRIMARY KEY, name text)`);
  await pool.end();
  const installed = await runCli(['install', '--table', 'public.secret_items'], { env: { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl } });
  expect(installed.code, installed.stderr).toBe(0);
});
afterAll(async () => {
  await Promise.all([pgServer?.stop(), redisServer?.stop()]);
});

function expectNoSecret(result: Pick<RunResult, 'stdout' | 'stderr'>): void {
  for (const secret of SECRETS) {
    expect(result.stdout, 'stdout').not.toContain(secret);
    expect(result.stderr, 'stderr').not.toContain(secret);
  }
}

/** One line on stderr, exit code 1, no stack trace, no password. */
function expectOneLineError(result: RunResult, pattern: RegExp): void {
  expect(result.code, result.stderr).toBe(1);
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expectNoSecret(result);
}

const wrongDatabaseUrl = (): string => pgServer.url(WRONG);
const wrongRedisUrl = (): string => `redis://:${WRONG}@127.0.0.1:${redisServer.port}`;

describe('passwords never appear in output', () => {
  it('a wrong PostgreSQL password: one line for every command, from env or flag', async () => {
    for (const args of [['status'], ['listen'], ['sync'], ['verify'], ['install', '--table', 'public.secret_items'], ['sql', 'install', '--table', 'public.secret_items']]) {
      const result = await runCli(args, { env: { DATABASE_URL: wrongDatabaseUrl(), REDIS_URL: redisUrl } });
      expectOneLineError(result, /^pg-redis-mirror: cannot log in to PostgreSQL at 127\.0\.0\.1:\d+\/postgres: password authentication failed for user "postgres"; check the user and password/);
    }
    const byFlag = await runCli(['status', '--database-url', wrongDatabaseUrl(), '--redis-url', redisUrl]);
    expectOneLineError(byFlag, /cannot log in to PostgreSQL/);
  });

  it('a wrong or missing Redis password: one line, for the daemon and one-shot commands', async () => {
    for (const url of [wrongRedisUrl(), `redis://default:${WRONG}@127.0.0.1:${redisServer.port}`]) {
      for (const args of [['listen'], ['sync'], ['verify']]) {
        const result = await runCli(args, { env: { DATABASE_URL: databaseUrl, REDIS_URL: url } });
        expectOneLineError(result, /^pg-redis-mirror: cannot log in to Redis at 127\.0\.0\.1:\d+: WRONGPASS .*check the user and password in --redis-url/);
      }
    }
    const missing = await runCli(['listen'], { env: { DATABASE_URL: databaseUrl, REDIS_URL: `redis://127.0.0.1:${redisServer.port}` } });
    expectOneLineError(missing, /cannot log in to Redis .*NOAUTH/);
  });

  it('status reports a Redis it cannot log in to without its password, in text and JSON', async () => {
    for (const args of [['status'], ['status', '--json']]) {
      const result = await runCli(args, { env: { DATABASE_URL: databaseUrl, REDIS_URL: wrongRedisUrl() } });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stdout).toMatch(/WRONGPASS/);
      expectNoSecret(result);
    }
    const ok = await runCli(['status'], { env: { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl } });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expectNoSecret(ok);
  });

  it('--verbose prints the stack trace, still without the password', async () => {
    const result = await runCli(['status', '--verbose'], { env: { DATABASE_URL: wrongDatabaseUrl(), REDIS_URL: redisUrl } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot log in to PostgreSQL/);
    expectNoSecret(result);
  });

  it('verify-full against a certificate nobody vouched for: one line naming sslrootcert, without the password', async () => {
    for (const params of ['sslmode=verify-full', `sslmode=verify-full&sslrootcert=${pgServer.certs.otherCa}`]) {
      const url = pgServer.url(PG_PASSWORD, params, { host: 'localhost' });
      const result = await runCli(['status'], { env: { DATABASE_URL: url, REDIS_URL: redisUrl } });
      expectOneLineError(result, /^pg-redis-mirror: .*sslrootcert=.*sslmode=require/);
    }
  });

  it('an unparsable URL with a password is not echoed', async () => {
    const result = await runCli(['listen'], { env: { DATABASE_URL: databaseUrl, REDIS_URL: `redis://:${REDIS_PASSWORD}@127.0.0.1:port` } });
    expectOneLineError(result, /Redis URL is not a valid URL/);
  });

  it('the daemon\'s logs, through a Redis outage and back, never hold a password', async () => {
    const env = { DATABASE_URL: databaseUrl, REDIS_URL: redisUrl };
    const daemon = spawnCli(['listen', '--verbose', '--poll-interval', '200'], { env });
    try {
      await waitUntil('the daemon listens', () => daemon.stderr.includes('listening'), 20_000);
      const pool = createPool(databaseUrl, { max: 1 });
      try {
        await redisServer.stop();
        await pool.query(`INSERT INTO secret_items VALUES (1, 'during the outage')`);
        await waitUntil('the daemon logs the failed batch', () => daemon.stderr.includes('batch failed'), 20_000);
        await redisServer.start();
        await waitUntil('the daemon recovers', () => daemon.stderr.includes('recovered'), 30_000);
      } finally {
        await pool.end();
      }
    } finally {
      daemon.child.kill('SIGTERM');
    }
    const result = await daemon.exited;
    expect(result.code, result.stderr).toBe(0);
    expectNoSecret(result);
  });
});
