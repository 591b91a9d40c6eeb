import { afterAll, beforeAll, expect, it } from 'vitest';
import type pg from 'pg';
import type { Cluster } from 'ioredis';
import type { Config } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { readMeta } from '../src/daemon/meta.js';
import { install } from '../src/install/install.js';
import { isCluster, SLOT_COUNT, slotOf } from '../src/redis/cluster.js';
import { connectRedis } from '../src/redis/connect.js';
import { writeKeys } from '../src/redis/replace.js';
import { slotStateKey, stateKey } from '../src/redis/state.js';
import { readStatus } from '../src/status/status.js';
import { syncTables } from '../src/sync/sync.js';
import { isClean, verifyMirror } from '../src/verify/verify.js';
import { runCli } from './helpers/cli.js';
import { TestRedisCluster } from './helpers/redis-cluster.js';
import { createScratch, settle, sleep, startDaemon, waitUntil, type Scratch } from './helpers/scratch.js';
import { rng } from './helpers/random.js';

let scratch: Scratch;
let redisCluster: TestRedisCluster;
let redis: Cluster;
let config: Config;

beforeAll(async () => {
  redisCluster = await TestRedisCluster.start(3);
  scratch = await createScratch('cluster');
  const client = await connectRedis(redisCluster.url);
  if (!isCluster(client)) throw new Error('a cluster URL gave a standalone client');
  redis = client;
}, 60_000);
afterAll(async () => {
  redis?.disconnect();
  await scratch?.cleanup();
  await redisCluster?.stop();
});

/** Keys on each master of the test cluster. */
async function keysPerMaster(): Promise<number[]> {
  return Promise.all(redis.nodes('master').map((node) => node.dbsize()));
}

async function expectClean(): Promise<void> {
  const reports = await verifyMirror(scratch.pool, redis, { schema: config.schema });
  if (!isClean(reports)) throw new Error(`mirror drift: ${JSON.stringify(reports, null, 1)}`);
}


const IDS = 2000;

function randomStatement(r: () => number): string {
  const id = (): number => 1 + Math.floor(r() * IDS);
  const pick = r();
  if (pick < 0.3) return `INSERT INTO items VALUES (${id()}, ${Math.floor(r() * 20)}, ${Math.floor(r() * 100)}, 'n${Math.floor(r() * 1000)}') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, name = EXCLUDED.name`;
  if (pick < 0.45) return `UPDATE items SET v = v + 1, name = ${r() < 0.2 ? 'NULL' : "'u'"} WHERE id = ${id()}`;
  if (pick < 0.55) return `UPDATE items SET v = v - 1 WHERE grp = ${Math.floor(r() * 20)}`;
  if (pick < 0.63) return `DELETE FROM items WHERE id = ${id()}`;
  if (pick < 0.7) return `UPDATE items SET id = ${IDS + id()} WHERE id = ${id()}`;
  if (pick < 0.85) return `INSERT INTO pairs VALUES (${Math.floor(r() * 50)}, 'b${Math.floor(r() * 40)}', ${Math.floor(r() * 100)}) ON CONFLICT (a, b) DO UPDATE SET v = pairs.v + 1`;
  if (pick < 0.99) return `DELETE FROM pairs WHERE a = ${Math.floor(r() * 50)} AND v % 2 = 0`;
  return 'TRUNCATE pairs';
}

async function worker(pool: pg.Pool, seed: number, until: () => boolean): Promise<number> {
  const r = rng(seed);
  const client = await pool.connect();
  let committed = 0;
  try {
    while (!until()) {
      await client.query('BEGIN');
      try {
        for (let i = 1 + Math.floor(r() * 3); i > 0; i--) await client.query(randomStatement(r));
        await client.query(r() < 0.2 ? 'ROLLBACK' : 'COMMIT');
        committed++;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code !== '23505' && code !== '40P01') throw error;
        await client.query('ROLLBACK');
      }
    }
  } finally {
    client.release();
  }
  return committed;
}

it('mirrors into a Redis Cluster: sync, the daemon under a random workload with TRUNCATE and a restart, fencing per slot, verify --repair, status and purge', async () => {
  await scratch.pool.query(`
    CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, v int NOT NULL, name text);
    CREATE TABLE pairs (a int, b text, v int NOT NULL, PRIMARY KEY (a, b));
    INSERT INTO items SELECT g, g % 20, g, 'row ' || g FROM generate_series(1, ${IDS}) g;
    INSERT INTO pairs SELECT g % 50, 'b' || g, g FROM generate_series(1, 500) g;`);
  config = scratch.config(['public.items', { table: 'public.pairs', format: 'json' }], { redisUrl: redisCluster.url, batchSize: 97 });
  await install(config, scratch.pool);

  // sync: every row, on every master.
  const copied = await syncTables(scratch.pool, redis, { schema: config.schema });
  expect(copied.every((r) => r.complete)).toBe(true);
  await expectClean();
  const perMaster = await keysPerMaster();
  expect(perMaster).toHaveLength(3);
  for (const n of perMaster) expect(n).toBeGreaterThan(100);

  // The daemon under concurrent writes, restarted midway (the new leader raises the fence again).
  let daemon: MirrorDaemon = await startDaemon(config, { pollIntervalMs: 200 });
  let stop = false;
  const workers = [1, 2, 3].map((w) => worker(scratch.pool, 4242 + w, () => stop));
  try {
    await sleep(2000);
    await scratch.pool.query('TRUNCATE pairs');
    await sleep(500);
    await daemon.stop();
    await sleep(500);
    daemon = await startDaemon(config, { pollIntervalMs: 200 });
    await sleep(1500);
  } finally {
    stop = true;
    const committed = await Promise.all(workers);
    expect(committed.reduce((a, b) => a + b, 0)).toBeGreaterThan(20);
  }
  try {
    await settle(scratch, config, 60_000);
    await expectClean();

    // TRUNCATE through the daemon empties the table's keys on every master.
    await scratch.pool.query('TRUNCATE pairs');
    await settle(scratch, config);
    await expectClean();
    const pairKeys = await Promise.all(redis.nodes('master').map((node) => node.keys(`${config.prefix}public.pairs:*`)));
    expect(pairKeys.flat()).toEqual([]);

    // Fencing: the token is in the fence key of every slot; a write with an older token is
    // refused in every slot it touches, whatever the master.
    const client = await scratch.pool.connect();
    const installId = (await readMeta(client, { schema: config.schema, group: 'default' }).finally(() => client.release())).installId;
    const token = await redis.hget(stateKey(installId), 'leader');
    expect(Number(token)).toBeGreaterThanOrEqual(2);
    for (const slot of [0, 5000, 9000, SLOT_COUNT - 1]) expect(await redis.hget(slotStateKey(installId, slot), 'leader')).toBe(token);
    const stale = { key: stateKey(installId), token: String(Number(token) - 1), keyInSlot: (slot: number) => slotStateKey(installId, slot) };
    const fencedKeys = ['a', 'b', 'c', 'd', 'e', 'f'].map((k) => `${config.prefix}fenced:${k}`);
    expect(new Set(fencedKeys.map(slotOf)).size).toBeGreaterThan(1);
    await expect(writeKeys(redis, fencedKeys.map((key) => ({ key, hash: ['x', '1'] })), stale)).rejects.toThrow(/FENCED/);
    for (const key of fencedKeys) expect(await redis.exists(key)).toBe(0);
  } finally {
    await daemon.stop();
  }

  // verify finds drift spread over the masters, and --repair fixes it.
  await scratch.pool.query(`INSERT INTO pairs SELECT g, 'r', g FROM generate_series(1, 50) g`);
  await syncTables(scratch.pool, redis, { schema: config.schema });
  const itemIds = (await scratch.pool.query<{ id: number }>('SELECT id FROM items ORDER BY id LIMIT 30')).rows.map((r) => r.id);
  for (const id of itemIds.slice(0, 10)) await redis.del(`${config.prefix}public.items:${id}`);
  for (const id of itemIds.slice(10, 20)) await redis.hset(`${config.prefix}public.items:${id}`, 'v', 'stale');
  for (let i = 0; i < 10; i++) await redis.set(`${config.prefix}public.items:${100_000 + i}`, 'extra');
  const drift = await verifyMirror(scratch.pool, redis, { schema: config.schema });
  const items = drift.find((r) => r.table === 'public.items')!;
  expect([items.missing, items.stale, items.extra]).toEqual([10, 10, 10]);
  await verifyMirror(scratch.pool, redis, { schema: config.schema, repair: true });
  await expectClean();

  // A master that loses its data (not the one with the epoch) is noticed by its fence keys:
  // the daemon copies every table again.
  const client = await scratch.pool.connect();
  const { installId } = await readMeta(client, { schema: config.schema, group: 'default' }).finally(() => client.release());
  const epochMaster = redis.slots[slotOf(stateKey(installId))]![0];
  const address = (node: (typeof masters)[number]): string => `${node.options.host}:${node.options.port}`;
  const masters = redis.nodes('master');
  expect(masters.map(address)).toContain(epochMaster);
  const other = masters.find((node) => address(node) !== epochMaster)!;
  daemon = await startDaemon(config, { pollIntervalMs: 200 });
  try {
    await waitUntil('the daemon leads', () => daemon.role === 'leader');
    await other.flushall();
    await waitUntil('the lost master is filled again', async () => isClean(await verifyMirror(scratch.pool, redis, { schema: config.schema })), 30_000);
  } finally {
    await daemon.stop();
  }

  // status counts each table's keys over every master.
  const rows = Number((await scratch.pool.query<{ n: string }>('SELECT count(*) AS n FROM items')).rows[0]!.n);
  const status = await readStatus(scratch.pool, { schema: config.schema, redisUrl: redisCluster.url });
  expect(status.redis.reachable).toBe(true);
  expect(status.tables.find((t) => t.table === 'public.items')?.keys).toBe(rows);

  // uninstall --purge-redis leaves nothing in the cluster, fence keys included.
  const env = { DATABASE_URL: scratch.databaseUrl, REDIS_URL: redisCluster.url };
  const uninstall = await runCli(['uninstall', '--purge-redis', '--schema', config.schema, '--prefix', config.prefix], { env });
  expect(uninstall.stderr).toBe('');
  expect(uninstall.code).toBe(0);
  expect((await keysPerMaster()).reduce((a, b) => a + b, 0)).toBe(0);
}, 120_000);
