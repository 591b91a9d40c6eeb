import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import pg from 'pg';
import type { RedisClient } from '../redis/cluster.js';
import { resolveConfig, type Config } from '../config/load.js';
import { clientConfig, createPool } from '../db/connect.js';
import { describePgError } from '../db/errors.js';
import { MirrorDaemon } from '../daemon/daemon.js';
import { waitForEmptyJournal } from '../daemon/backlog.js';
import { install, uninstall } from '../install/install.js';
import { connectRedis } from '../redis/connect.js';
import { deleteMatching, scanKeys } from '../redis/scan.js';
import { stateKey } from '../redis/state.js';
import { escapeGlob } from '../redis/keys.js';
import { createLogger } from '../log.js';
import { quoteIdent } from '../sql/quote.js';
import { globals } from './options.js';

/** The URL of another database on the same server. */
export function withDatabase(databaseUrl: string, database: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

const SETUP = `
CREATE TABLE public.products (
  id serial PRIMARY KEY,
  name text NOT NULL,
  price numeric(10, 2),
  tags text[],
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public.order_lines (
  order_id int,
  line int,
  sku text NOT NULL,
  qty int NOT NULL,
  PRIMARY KEY (order_id, line)
);`;

const STEPS: { title: string; sql: string }[] = [
  {
    title: 'INSERT three products and an order with two lines',
    sql: `INSERT INTO products (name, price, tags) VALUES ('Tea', 4.50, '{drink,hot}'), ('Coffee', 3.20, '{drink}'), ('Scone', NULL, NULL);
          INSERT INTO order_lines VALUES (1, 1, 'tea', 2), (1, 2, 'scone', 1);`,
  },
  { title: 'UPDATE one price (a multi-row UPDATE works the same way)', sql: `UPDATE products SET price = 4.75, updated_at = now() WHERE name = 'Tea'` },
  { title: 'UPDATE a primary key: the old key goes, the new one appears', sql: `UPDATE products SET id = 42 WHERE name = 'Coffee'` },
  { title: 'DELETE a row', sql: `DELETE FROM products WHERE name = 'Scone'` },
  { title: 'TRUNCATE a table: all its keys go', sql: `TRUNCATE order_lines` },
];

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('show the mirror at work on a scratch database and Redis prefix, then clean up')
    .action(async (_options: unknown, command: Command) => {
      const g = globals(command);
      const base = resolveConfig({}, { ...(g.databaseUrl === undefined ? {} : { databaseUrl: g.databaseUrl }), ...(g.redisUrl === undefined ? {} : { redisUrl: g.redisUrl }) }, process.env);
      await runDemo(base, (line) => console.log(line));
    });
}

export async function runDemo(base: Config, out: (line: string) => void): Promise<void> {
  const suffix = randomBytes(4).toString('hex');
  const database = `pg_redis_mirror_demo_${suffix}`;
  const prefix = `demo:${suffix}:`;
  const admin = new pg.Client(clientConfig(base.databaseUrl, 'pg-redis-mirror demo'));
  try {
    await admin.connect();
  } catch (error) {
    throw describePgError(error, base.databaseUrl);
  }
  const redis = await connectRedis(base.redisUrl).catch(async (error: unknown) => {
    await admin.end();
    throw error;
  });
  let daemon: MirrorDaemon | undefined;
  const databaseUrl = withDatabase(base.databaseUrl, database);
  const config: Config = { ...base, databaseUrl, prefix, tables: [
    { schema: 'public', name: 'products', format: 'hash', prefix },
    { schema: 'public', name: 'order_lines', format: 'json', prefix },
  ] };
  const pool = createPool(databaseUrl, { max: 2 });
  try {
    out(`scratch database ${database}, Redis prefix ${prefix}`);
    await admin.query(`CREATE DATABASE ${quoteIdent(database)}`);
    await pool.query(SETUP);
    out('created tables public.products (hash values) and public.order_lines (composite key, json values)');
    const installed = await install(config, pool);
    out(`install: ${installed.tables.map((t) => `${t.action} ${t.table}`).join(', ')}`);
    daemon = await MirrorDaemon.start({ ...config, logger: createLogger({ level: 'warn' }) });
    out('daemon listening\n');
    for (const step of STEPS) {
      out(`-- ${step.title}`);
      out(`   ${step.sql.replace(/\s+/g, ' ').trim()}`);
      await pool.query(step.sql);
      const committed = performance.now();
      await waitForEmptyJournal(pool, config.schema, 10_000, 1);
      out(`   in Redis ${(performance.now() - committed).toFixed(1)} ms after COMMIT:`);
      for (const line of await dumpKeys(redis, prefix)) out(`   ${line}`);
      out('');
    }
  } finally {
    await daemon?.stop();
    // The daemon's state hash in Redis is named after the install, not the prefix.
    const installId = await pool
      .query<{ value: string }>(`SELECT value FROM ${quoteIdent(config.schema)}.meta WHERE key = 'install_id'`)
      .then((r) => r.rows[0]?.value ?? null, () => null);
    if (installId !== null) await redis.del(stateKey(installId));
    await uninstall(config, pool).catch(() => undefined);
    await pool.end();
    const deleted = await deleteMatching(redis, `${escapeGlob(prefix)}*`);
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    redis.disconnect();
    out(`cleaned up: uninstalled, deleted ${deleted} keys and database ${database}`);
  }
}

async function dumpKeys(redis: RedisClient, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of scanKeys(redis, `${escapeGlob(prefix)}*`)) keys.push(...page);
  if (keys.length === 0) return ['(no keys)'];
  keys.sort();
  const lines: string[] = [];
  for (const key of keys) {
    const type = await redis.type(key);
    const value = type === 'hash' ? JSON.stringify(await redis.hgetall(key)) : String(await redis.get(key));
    lines.push(`${key.padEnd(prefix.length + 26)} ${type.padEnd(6)} ${value}`);
  }
  return lines;
}
