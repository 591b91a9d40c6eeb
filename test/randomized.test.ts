import { afterAll, beforeAll, expect, it } from 'vitest';
import type pg from 'pg';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install } from '../src/install/install.js';
import { createScratch, expectMirrorClean, settle, sleep, startDaemon, type Scratch } from './helpers/scratch.js';
import { rng } from './helpers/random.js';

let scratch: Scratch;

beforeAll(async () => {
  scratch = await createScratch('random');
});
afterAll(async () => {
  await scratch.cleanup();
});


const IDS = 3000;

/**
 * parts, partitioned by region: parts_a holds regions 0 and 1 and is itself partitioned by id
 * (below 250, and from 250), parts_b region 2, parts_c region 3. Statements go through the
 * table and straight to partitions; region changes move rows between partitions.
 */
function partsStatement(r: () => number): string {
  const region = () => Math.floor(r() * 4);
  const id = () => 1 + Math.floor(r() * 500);
  const leaf = (): [string, number] => (r() < 0.5 ? ['parts_b', 2] : ['parts_c', 3]);
  const pick = r();
  if (pick < 0.3) return `INSERT INTO parts VALUES (${region()}, ${id()}, ${Math.floor(r() * 100)}) ON CONFLICT (region, id) DO UPDATE SET v = parts.v + 1`;
  if (pick < 0.42) {
    const [name, reg] = leaf();
    return `INSERT INTO ${name} VALUES (${reg}, ${id()}, ${Math.floor(r() * 100)}) ON CONFLICT (region, id) DO NOTHING`;
  }
  if (pick < 0.57) return `UPDATE parts SET region = ${region()} WHERE id = ${id()}`;
  if (pick < 0.65) return `UPDATE parts_a SET id = id + 250 WHERE id BETWEEN ${id()} AND ${id()} AND v % 3 = 0`;
  if (pick < 0.75) return `UPDATE ${leaf()[0]} SET v = v + 1, id = id + ${Math.floor(r() * 3)} WHERE id % 11 = ${Math.floor(r() * 11)}`;
  if (pick < 0.85) return `DELETE FROM parts WHERE id = ${id()}`;
  if (pick < 0.99) return `DELETE FROM ${leaf()[0]} WHERE id BETWEEN ${id()} AND ${id()}`;
  return `TRUNCATE ${r() < 0.5 ? 'parts_a_low' : leaf()[0]}`;
}

function randomStatement(r: () => number): string {
  if (r() < 0.25) return partsStatement(r);
  const id = () => 1 + Math.floor(r() * IDS);
  const text = () => (r() < 0.1 ? null : `'${['a', 'b:c', 'é', 'x\\y', "q''t", 'line\nbreak'][Math.floor(r() * 6)]}${Math.floor(r() * 1000)}'`);
  const pick = r();
  if (pick < 0.25) return `INSERT INTO items VALUES (${id()}, ${Math.floor(r() * 20)}, ${Math.floor(r() * 100)}, ${text()}) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, name = EXCLUDED.name`;
  if (pick < 0.4) return `UPDATE items SET v = v + 1, name = ${text()} WHERE id = ${id()}`;
  if (pick < 0.48) return `UPDATE items SET v = v - 1 WHERE grp = ${Math.floor(r() * 20)}`;
  if (pick < 0.56) return `DELETE FROM items WHERE id = ${id()}`;
  if (pick < 0.6) return `DELETE FROM items WHERE id BETWEEN ${id()} AND ${id()} AND grp = ${Math.floor(r() * 20)}`;
  if (pick < 0.68) return `UPDATE items SET id = ${IDS + id()} WHERE id = ${id()}`;
  if (pick < 0.72) return `UPDATE items SET id = id - ${IDS} WHERE id > ${IDS} AND id % 7 = ${Math.floor(r() * 7)}`;
  if (pick < 0.85) return `INSERT INTO pairs VALUES (${Math.floor(r() * 50)}, ${text() ?? "'n'"}, ${Math.floor(r() * 100)}) ON CONFLICT (a, b) DO UPDATE SET v = pairs.v + 1`;
  if (pick < 0.92) return `UPDATE pairs SET a = a + 1 WHERE a = ${Math.floor(r() * 50)} AND v % 3 = 0`;
  if (pick < 0.995) return `DELETE FROM pairs WHERE a = ${Math.floor(r() * 50)} AND v % 2 = 0`;
  return `TRUNCATE pairs`;
}

/** One connection: transactions of 1-4 statements, a fifth of them rolled back; conflicts are expected and skipped. */
async function worker(pool: pg.Pool, seed: number, until: () => boolean, counts: { committed: number; rolledBack: number; failed: number }): Promise<void> {
  const r = rng(seed);
  const client = await pool.connect();
  try {
    while (!until()) {
      await client.query('BEGIN');
      try {
        const n = 1 + Math.floor(r() * 4);
        for (let i = 0; i < n; i++) await client.query(randomStatement(r));
        if (r() < 0.2) {
          await client.query('ROLLBACK');
          counts.rolledBack++;
        } else {
          await client.query('COMMIT');
          counts.committed++;
        }
      } catch (error) {
        // unique violations from key changes, deadlocks: the application's problem, not the mirror's
        const code = (error as { code?: string }).code;
        if (code !== '23505' && code !== '40P01' && code !== '40001') throw error;
        await client.query('ROLLBACK');
        counts.failed++;
      }
    }
  } finally {
    client.release();
  }
}

it('converges after concurrent random writes, rollbacks, and a daemon restart in the middle of them', async () => {
  const seed = Number(process.env.RANDOM_SEED ?? Date.now() % 100_000);
  console.log(`randomized workload seed ${seed} (replay with RANDOM_SEED=${seed})`);
  await scratch.pool.query(`
    CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, v int NOT NULL, name text);
    CREATE TABLE pairs (a int, b text, v int NOT NULL, PRIMARY KEY (a, b));
    CREATE TABLE parts (region int, id int, v int NOT NULL, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE parts_a PARTITION OF parts FOR VALUES IN (0, 1) PARTITION BY RANGE (id);
    CREATE TABLE parts_a_low PARTITION OF parts_a FOR VALUES FROM (MINVALUE) TO (250);
    CREATE TABLE parts_a_high PARTITION OF parts_a FOR VALUES FROM (250) TO (MAXVALUE);
    CREATE TABLE parts_b PARTITION OF parts FOR VALUES IN (2);
    CREATE TABLE parts_c PARTITION OF parts FOR VALUES IN (3);`);
  const config = scratch.config(['public.items', { table: 'public.pairs', format: 'json' }, 'public.parts'], { batchSize: 97 });
  await install(config, scratch.pool);
  let daemon: MirrorDaemon = await startDaemon(config, { pollIntervalMs: 200 });

  const counts = { committed: 0, rolledBack: 0, failed: 0 };
  let stop = false;
  const workers = [1, 2, 3, 4].map((w) => worker(scratch.pool, seed * 10 + w, () => stop, counts));
  try {
    await sleep(2000);
    await daemon.stop(); // writes go on while the daemon is down
    await sleep(1500);
    daemon = await startDaemon(config, { pollIntervalMs: 200 });
    await sleep(2000);
  } finally {
    stop = true;
    await Promise.all(workers);
  }
  try {
    await settle(scratch, config, 60_000);
    const reports = await expectMirrorClean(scratch, config);
    expect(counts.committed).toBeGreaterThan(50);
    expect(counts.rolledBack).toBeGreaterThan(5);
    expect(reports.reduce((sum, r) => sum + r.rows, 0)).toBeGreaterThan(100);
  } finally {
    await daemon.stop();
  }
});
