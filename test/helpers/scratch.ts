import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { RedisClient } from '../../src/redis/cluster.js';
import { clientConfig, createPool } from '../../src/db/connect.js';
import { withDatabase } from '../../src/cli/demo.js';
import { resolveConfig, type Config, type TableConfig } from '../../src/config/load.js';
import { connectRedis } from '../../src/redis/connect.js';
import { deleteMatching } from '../../src/redis/scan.js';
import { escapeGlob } from '../../src/redis/keys.js';
import { STATE_KEY_PREFIX } from '../../src/redis/state.js';
import { quoteIdent, quoteLiteral } from '../../src/sql/quote.js';
import { MirrorDaemon } from '../../src/daemon/daemon.js';
import { waitForEmptyJournal } from '../../src/daemon/backlog.js';
import { install } from '../../src/install/install.js';
import { verifyMirror, isClean } from '../../src/verify/verify.js';
import type { TableVerifyReport } from '../../src/verify/compare.js';
import { parseTableName } from '../../src/config/table-name.js';

export const BASE_DATABASE_URL = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://localhost:5432/postgres';
export const REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A database and a Redis key prefix of one test file's own, removed by cleanup(). */
export interface Scratch {
  database: string;
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  pool: pg.Pool;
  redis: RedisClient;
  /** A config for this scratch database and prefix, with the given tables. */
  config(tables?: (string | Partial<TableConfig> & { table: string })[], extra?: Partial<Config>): Config;
  cleanup(): Promise<void>;
}

/** `encoding`: a database in another server encoding than the cluster's default (UTF8). */
export async function createScratch(label: string, options: { encoding?: 'LATIN1' } = {}): Promise<Scratch> {
  const suffix = randomBytes(4).toString('hex');
  const database = `prm_test_${label}_${suffix}`;
  const admin = new pg.Client(clientConfig(BASE_DATABASE_URL));
  await admin.connect();
  const encoding = options.encoding === undefined ? '' : ` ENCODING ${quoteLiteral(options.encoding)} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`;
  await admin.query(`CREATE DATABASE ${quoteIdent(database)}${encoding}`);
  await admin.end();
  const databaseUrl = withDatabase(BASE_DATABASE_URL, database);
  const prefix = `test:${label}:${suffix}:`;
  const pool = createPool(databaseUrl, { max: 6 });
  const redis = await connectRedis(REDIS_URL);
  return {
    database,
    databaseUrl,
    redisUrl: REDIS_URL,
    prefix,
    pool,
    redis,
    config(tables = [], extra = {}) {
      const config = resolveConfig({ prefix }, { databaseUrl, redisUrl: REDIS_URL }, {});
      config.tables = tables.map((t) => {
        if (typeof t === 'string') return { ...parseTableName(t), format: 'hash', prefix };
        const { table, ...rest } = t;
        return { ...parseTableName(table), format: 'hash', prefix, ...rest };
      });
      return { ...config, ...extra };
    },
    async cleanup() {
      // The daemons' state hashes are named after each install, not after the prefix.
      const installs = await pool
        .query<{ schema: string }>(`SELECT n.nspname AS schema FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'meta'`)
        .catch(() => ({ rows: [] as { schema: string }[] }));
      for (const { schema } of installs.rows) {
        const id = await pool.query<{ value: string }>(`SELECT value FROM ${quoteIdent(schema)}.meta WHERE key = 'install_id'`).catch(() => ({ rows: [] as { value: string }[] }));
        const installId = id.rows[0]?.value;
        if (installId !== undefined) startedInstalls.add(installId);
      }
      // Also the installs a test uninstalled (without --purge-redis) after a daemon ran on them.
      for (const installId of startedInstalls) await deleteMatching(redis, `${escapeGlob(STATE_KEY_PREFIX)}*${escapeGlob(installId)}*`);
      startedInstalls.clear();
      await pool.end();
      await deleteMatching(redis, `${escapeGlob(prefix)}*`);
      redis.disconnect();
      const client = new pg.Client(clientConfig(BASE_DATABASE_URL));
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
      await client.end();
    },
  };
}

export async function installAndStart(scratch: Scratch, config: Config): Promise<MirrorDaemon> {
  await install(config, scratch.pool);
  return startDaemon(config);
}

/**
 * Install ids a daemon ran on, in this test file (a file's tests run one after another): each
 * daemon leaves a state hash in Redis, which an uninstall without --purge-redis keeps.
 */
const startedInstalls = new Set<string>();

export async function startDaemon(config: Config, extra: { pollIntervalMs?: number; batchSize?: number } = {}): Promise<MirrorDaemon> {
  const client = new pg.Client(clientConfig(config.databaseUrl));
  await client.connect();
  try {
    const id = await client.query<{ value: string }>(`SELECT value FROM ${quoteIdent(config.schema)}.meta WHERE key = 'install_id'`).catch(() => ({ rows: [] as { value: string }[] }));
    if (id.rows[0] !== undefined) startedInstalls.add(id.rows[0].value);
  } finally {
    await client.end();
  }
  return MirrorDaemon.start({
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    schema: config.schema,
    batchSize: extra.batchSize ?? config.batchSize,
    pollIntervalMs: extra.pollIntervalMs ?? config.pollIntervalMs,
  });
}

/** Waits until every committed change is in Redis. */
export function settle(scratch: Scratch, config: Config, timeoutMs = 30_000): Promise<void> {
  return waitForEmptyJournal(scratch.pool, config.schema, timeoutMs);
}

export async function verify(scratch: Scratch, config: Config): Promise<TableVerifyReport[]> {
  return verifyMirror(scratch.pool, scratch.redis, { schema: config.schema });
}

/** The oracle: every mirrored row is in Redis exactly, and no key is left over. */
export async function expectMirrorClean(scratch: Scratch, config: Config): Promise<TableVerifyReport[]> {
  const reports = await verify(scratch, config);
  if (!isClean(reports)) throw new Error(`mirror drift: ${JSON.stringify(reports, null, 1)}`);
  return reports;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
export async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await sleep(5);
  }
}
