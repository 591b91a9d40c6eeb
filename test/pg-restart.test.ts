/**
 * PostgreSQL going away under a running daemon: a restart of a server of this file's own
 * (the shared server is never stopped). The daemon must ride it out alone: reconnect with
 * backoff, LISTEN again, drain what was journaled, and lose nothing.
 */
import { randomBytes } from 'node:crypto';
import { wakeLockHeld } from './helpers/locks.js';
import type pg from 'pg';
import type { RedisClient } from '../src/redis/cluster.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool } from '../src/db/connect.js';
import { install } from '../src/install/install.js';
import { resolveConfig, type Config } from '../src/config/load.js';
import { connectRedis } from '../src/redis/connect.js';
import { deleteMatching } from '../src/redis/scan.js';
import { stateKey } from '../src/redis/state.js';
import { escapeGlob } from '../src/redis/keys.js';
import { waitForEmptyJournal } from '../src/daemon/backlog.js';
import { isClean, verifyMirror } from '../src/verify/verify.js';
import { TestPgCluster } from './helpers/pg-cluster.js';
import { spawnListen, type ListenChild } from './helpers/listen-child.js';
import { REDIS_URL, sleep, waitUntil } from './helpers/scratch.js';

let server: TestPgCluster;
let pool: pg.Pool;
let redis: RedisClient;
let daemon: ListenChild | undefined;
const prefix = `test:pgrestart:${randomBytes(4).toString('hex')}:`;

beforeAll(async () => {
  server = await TestPgCluster.create();
  pool = createPool(server.url(), { max: 4 });
  redis = await connectRedis(REDIS_URL);
});

afterAll(async () => {
  await daemon?.kill();
  // The daemon's state hash is named after the install, not the prefix.
  const id = await pool?.query<{ value: string }>(`SELECT value FROM redis_mirror.meta WHERE key = 'install_id'`).catch(() => undefined);
  await pool?.end();
  if (redis !== undefined) {
    await deleteMatching(redis, `${escapeGlob(prefix)}*`);
    const installId = id?.rows[0]?.value;
    if (installId !== undefined) await redis.del(stateKey(installId));
    redis.disconnect();
  }
  await server?.destroy();
});

async function expectClean(config: Config): Promise<void> {
  const reports = await verifyMirror(pool, redis, { schema: config.schema });
  expect(isClean(reports), JSON.stringify(reports)).toBe(true);
}

it('rides out a PostgreSQL restart: reconnects, LISTENs again and drains what was journaled', async () => {
  await pool.query(`CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text)`);
  const config = resolveConfig({ prefix }, { databaseUrl: server.url(), redisUrl: REDIS_URL, tables: ['public.items'] }, {});
  await install(config, pool);
  // The safety poll is out of the picture: only NOTIFY, the reconnect and retries can wake it.
  daemon = spawnListen({ databaseUrl: server.url(), redisUrl: REDIS_URL, prefix, extra: ['--poll-interval', '600000'] });
  await waitUntil('the daemon listens', () => daemon!.logs().some((l) => l.msg.startsWith('listening')), 20_000);

  await pool.query(`INSERT INTO items SELECT g, g, 'before' FROM generate_series(1, 500) g`);
  await waitForEmptyJournal(pool, config.schema, 10_000);
  await expectClean(config);

  // An operator restart, long enough for several failed reconnects and retries.
  await server.stop('fast');
  await sleep(6000);
  expect(daemon.alive(), daemon.cli.stderr).toBe(true);
  await server.start();

  // Journaled changes after the restart; some rows are changed again in later transactions.
  await pool.query(`UPDATE items SET v = v + 1, note = 'after' WHERE id % 3 = 0`);
  await pool.query(`DELETE FROM items WHERE id % 5 = 0`);
  await pool.query(`INSERT INTO items SELECT g, g, 'new' FROM generate_series(501, 800) g`);
  await waitForEmptyJournal(pool, config.schema, 30_000);
  await expectClean(config);
  expect(await redis.hget(`${prefix}public.items:801`, 'v')).toBeNull();

  // LISTEN was re-issued on the new connection: a single change while idle arrives at once,
  // with a poll ten minutes away.
  await waitUntil('the daemon is idle', () => wakeLockHeld(pool, config.schema), 20_000);
  const started = Date.now();
  await pool.query(`UPDATE items SET note = 'notified' WHERE id = 1`);
  await waitUntil('the notified change arrives', async () => (await redis.hget(`${prefix}public.items:1`, 'note')) === 'notified', 5000);
  expect(Date.now() - started).toBeLessThan(5000);
  expect(daemon.alive(), daemon.cli.stderr).toBe(true);
  const logs = daemon.logs();
  expect(logs.some((l) => l.msg === 'LISTEN connection lost; reconnecting')).toBe(true);
  await expectClean(config);
}, 90_000);
