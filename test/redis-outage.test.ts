/**
 * Redis away for a while under a running daemon (a redis-server of this file's own, killed by
 * PID and started again on the same port, with its data on disk as a production server has).
 * The application must not notice; the journal keeps every change; the daemon catches up alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { install } from '../src/install/install.js';
import { connectRedis } from '../src/redis/connect.js';
import { quoteIdent } from '../src/sql/quote.js';
import { isClean, verifyMirror } from '../src/verify/verify.js';
import type { Config } from '../src/config/load.js';
import { createScratch, settle, sleep, waitUntil, type Scratch } from './helpers/scratch.js';
import { TestRedisServer } from './helpers/redis-server.js';
import { spawnListen, type ListenChild } from './helpers/listen-child.js';
import { writeLoop, type WriteCounts } from './helpers/writers.js';

let scratch: Scratch;
let redisServer: TestRedisServer;
let daemon: ListenChild | undefined;
const dataDir = mkdtempSync(join(tmpdir(), 'prm-redis-'));

beforeAll(async () => {
  scratch = await createScratch('redisdown');
  redisServer = await TestRedisServer.start(undefined, { dataDir });
});
afterAll(async () => {
  await daemon?.kill();
  await redisServer?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  await scratch?.cleanup();
});

async function expectClean(config: Config): Promise<void> {
  const redis = await connectRedis(redisServer.url);
  try {
    const reports = await verifyMirror(scratch.pool, redis, { schema: config.schema });
    expect(isClean(reports), JSON.stringify(reports)).toBe(true);
  } finally {
    redis.disconnect();
  }
}

it('keeps the journal while Redis is down, never fails the application, and catches up when Redis is back', async () => {
  await scratch.pool.query(`CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text)`);
  const config = scratch.config(['public.items'], { redisUrl: redisServer.url });
  await install(config, scratch.pool);
  const journalRows = async (): Promise<number> => Number((await scratch.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(config.schema)}.journal`)).rows[0]!.n);

  daemon = spawnListen({ databaseUrl: scratch.databaseUrl, redisUrl: redisServer.url, prefix: scratch.prefix, extra: ['--poll-interval', '200'] });
  await scratch.pool.query(`INSERT INTO items SELECT g, g, 'start' FROM generate_series(1, 300) g`);
  await settle(scratch, config, 20_000);
  await expectClean(config);

  await redisServer.stop();
  const counts: WriteCounts = { transactions: 0, changed: 0, errors: [] };
  let stop = false;
  const writers = [1, 2].map((seed) => writeLoop(scratch.pool, 'items', 600, seed, () => stop, counts));
  try {
    await sleep(1500);
    await scratch.pool.query(`UPDATE items SET note = 'bulk while down' WHERE id % 4 = 0`);
    await sleep(1000);
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  expect(counts.errors).toEqual([]);
  expect(counts.transactions).toBeGreaterThan(50);

  // The daemon goes on trying (and failing) for a while: not one journal row may go.
  // One journal row per changing statement: each writer's, and the bulk UPDATE's one.
  const held = await journalRows();
  expect(held).toBe(counts.changed + 1);
  await waitUntil('the daemon retried at least twice', () => daemon!.logs().filter((l) => l.msg === 'batch failed; journal kept, will retry').length >= 2, 15_000);
  await sleep(1000);
  expect(await journalRows()).toBe(held);
  expect(daemon.alive(), daemon.cli.stderr).toBe(true);

  await redisServer.start();
  await settle(scratch, config, 30_000);
  await expectClean(config);
  expect(daemon.alive(), daemon.cli.stderr).toBe(true);
  expect(daemon.logs().some((l) => l.msg === 'recovered; journal drained')).toBe(true);
}, 60_000);
