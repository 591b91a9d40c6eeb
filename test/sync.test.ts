import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { Config } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install } from '../src/install/install.js';
import { syncTables } from '../src/sync/sync.js';
import { createScratch, expectMirrorClean, settle, sleep, startDaemon, verify, waitUntil, type Scratch } from './helpers/scratch.js';
import { MirrorDaemon as Daemon } from '../src/daemon/daemon.js';
import { applyLockKey } from '../src/install/names.js';

let scratch: Scratch;
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('sync');
});
afterAll(async () => {
  await scratch.cleanup();
});

async function table(name: string, rows: number): Promise<Config> {
  await scratch.pool.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await scratch.pool.query(`INSERT INTO ${name} SELECT g, g, 'row ' || g FROM generate_series(1, ${rows}) g`);
  const config = scratch.config([`public.${name}`], { schema: `sync_${++counter}` });
  await install(config, scratch.pool);
  return config;
}

/** Random single-row and multi-row writes on another connection until stopped. */
function writeWhile(pool: pg.Pool, name: string, rows: number, stop: () => boolean): Promise<number> {
  return (async () => {
    let n = 0;
    while (!stop()) {
      const id = 1 + Math.floor(Math.random() * rows);
      const pick = n % 5;
      if (pick === 0) await pool.query(`UPDATE ${name} SET v = v + 1 WHERE id = $1`, [id]);
      else if (pick === 1) await pool.query(`DELETE FROM ${name} WHERE id = $1`, [id]);
      else if (pick === 2) await pool.query(`INSERT INTO ${name} VALUES ($1, 0, 'new') ON CONFLICT (id) DO UPDATE SET note = 'upserted'`, [id]);
      else if (pick === 3) await pool.query(`UPDATE ${name} SET note = md5(note) WHERE id BETWEEN $1 AND $1 + 50`, [id]);
      else await pool.query(`UPDATE ${name} SET id = id + ${rows} WHERE id = $1`, [id]).catch(() => undefined);
      n++;
    }
    return n;
  })();
}

describe('sync', () => {
  it('copies every row in the daemon format and converges with writes during the copy, daemon running', async () => {
    const config = await table('copy_live', 30_000);
    const daemon = await startDaemon(config);
    let stop = false;
    const writer = writeWhile(scratch.pool, 'copy_live', 30_000, () => stop);
    try {
      const progress: number[] = [];
      const [result] = await syncTables(scratch.pool, scratch.redis, { schema: config.schema, pageSize: 1000, onProgress: (p) => progress.push(p.rows) });
      expect(result!.complete).toBe(true);
      expect(result!.rows).toBeGreaterThan(29_000);
      expect(progress.length).toBeGreaterThan(20);
    } finally {
      stop = true;
    }
    expect(await writer).toBeGreaterThan(10);
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
    await daemon.stop();
  });

  it('converges when the daemon only starts after the copy', async () => {
    const config = await table('copy_then_daemon', 20_000);
    let stop = false;
    const writer = writeWhile(scratch.pool, 'copy_then_daemon', 20_000, () => stop);
    try {
      await syncTables(scratch.pool, scratch.redis, { schema: config.schema, pageSize: 500 });
    } finally {
      stop = true;
    }
    await writer;
    const before = await verify(scratch, config);
    expect(before[0]!.missing + before[0]!.stale + before[0]!.extra).toBeGreaterThan(0);
    const daemon = await startDaemon(config);
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
    await daemon.stop();
  });

  it('listen --sync copies tables never copied, once, and again after their options change', async () => {
    const config = await table('copy_on_listen', 5_000);
    let daemon: MirrorDaemon = await Daemon.start({ ...config, syncNeverCopied: true });
    const copied = async () => (await scratch.pool.query(`SELECT synced_at FROM ${config.schema}.tables`)).rows[0].synced_at !== null;
    await waitUntil('the initial copy finishes', copied, 20_000);
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
    await daemon.stop();

    await install({ ...config, tables: config.tables.map((t) => ({ ...t, format: 'json' as const })) }, scratch.pool);
    const reset = await scratch.pool.query(`SELECT synced_at FROM ${config.schema}.tables`);
    expect(reset.rows[0].synced_at).toBeNull();
    const stale = await verify(scratch, config);
    expect(stale[0]!.stale).toBe(5_000);
    daemon = await Daemon.start({ ...config, syncNeverCopied: true });
    await waitUntil('the re-copy finishes', copied, 20_000);
    expect(await scratch.redis.get(`${scratch.prefix}public.copy_on_listen:7`)).toBe('{"v": 7, "id": 7, "note": "row 7"}');
    await expectMirrorClean(scratch, config);
    await daemon.stop();
  });

  it('never interleaves a copy chunk with a daemon batch (the apply lock)', async () => {
    const config = await table('copy_lock', 100);
    const [a, b] = applyLockKey(config.schema);
    const daemon = await startDaemon(config);
    const holder = await scratch.pool.connect();
    try {
      // While a copy chunk holds the lock exclusively, the daemon applies nothing...
      await holder.query(`BEGIN; SELECT pg_advisory_xact_lock(${a}, ${b})`);
      await scratch.pool.query(`INSERT INTO copy_lock VALUES (1000, 1, 'held')`);
      await sleep(400);
      expect(await scratch.redis.exists(`${scratch.prefix}public.copy_lock:1000`)).toBe(0);
      await holder.query('COMMIT');
      await settle(scratch, config);
      expect(await scratch.redis.hget(`${scratch.prefix}public.copy_lock:1000`, 'note')).toBe('held');
      // ...and while a daemon batch holds it shared, a copy waits.
      await holder.query(`BEGIN; SELECT pg_advisory_xact_lock_shared(${a}, ${b})`);
      const rows: number[] = [];
      const copy = syncTables(scratch.pool, scratch.redis, { schema: config.schema, onProgress: (p) => rows.push(p.rows) });
      await sleep(400);
      expect(rows).toEqual([]);
      await holder.query('COMMIT');
      await copy;
      expect(rows.at(-1)).toBe(101);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
      await daemon.stop();
    }
  });

  it('replaces each key whole: fields the row no longer has, keys of another type and old TTLs go (hash and json)', async () => {
    const config = await table('copy_replace', 40);
    await scratch.pool.query(`UPDATE copy_replace SET note = NULL WHERE id = 5`);
    const key = (id: number): string => `${scratch.prefix}public.copy_replace:${id}`;
    const prepare = async (): Promise<void> => {
      await scratch.redis.del(key(1), key(2), key(3), key(4), key(5), key(6));
      await scratch.redis.hset(key(1), 'v', '1', 'note', 'row 1', 'id', '1', 'gone', 'x');
      await scratch.redis.set(key(2), 'a string');
      await scratch.redis.rpush(key(3), 'a', 'list');
      await scratch.redis.hset(key(4), 'v', 'old', 'note', 'old', 'id', '4');
      await scratch.redis.expire(key(4), 1000);
      await scratch.redis.hset(key(5), 'v', '5', 'note', 'row 5', 'id', '5');
      await scratch.redis.hset(key(6), 'unrelated', 'field');
    };
    await prepare();
    const [result] = await syncTables(scratch.pool, scratch.redis, { schema: config.schema, pageSize: 16 });
    expect(result!.rows).toBe(40);
    expect(await scratch.redis.hgetall(key(1))).toEqual({ id: '1', v: '1', note: 'row 1' });
    expect(await scratch.redis.hgetall(key(2))).toEqual({ id: '2', v: '2', note: 'row 2' });
    expect(await scratch.redis.hgetall(key(3))).toEqual({ id: '3', v: '3', note: 'row 3' });
    expect(await scratch.redis.ttl(key(4))).toBe(-1);
    expect(await scratch.redis.hgetall(key(5))).toEqual({ id: '5', v: '5' });
    expect(await scratch.redis.hgetall(key(6))).toEqual({ id: '6', v: '6', note: 'row 6' });
    await expectMirrorClean(scratch, config);

    const json = { ...config, tables: config.tables.map((t) => ({ ...t, format: 'json' as const })) };
    await install(json, scratch.pool);
    await prepare();
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema, pageSize: 16 });
    expect(await scratch.redis.get(key(3))).toBe('{"v": 3, "id": 3, "note": "row 3"}');
    expect(await scratch.redis.ttl(key(4))).toBe(-1);
    await expectMirrorClean(scratch, json);
  });

  it('pages through a composite key whose text order differs from its order (int, text)', async () => {
    await scratch.pool.query(`CREATE TABLE copy_composite (a int, b text, v int NOT NULL, PRIMARY KEY (a, b))`);
    // a = 9 sorts after a = 10 as text; b = 'B' before 'a' in byte order but not in every collation.
    await scratch.pool.query(`INSERT INTO copy_composite SELECT a, b, a FROM generate_series(1, 120) a, unnest(ARRAY['a', 'B', 'b:c', 'z']) b`);
    const config = scratch.config(['public.copy_composite'], { schema: `sync_${++counter}` });
    await install(config, scratch.pool);
    for (const pageSize of [7, 480, 1000]) {
      await scratch.redis.del(...(await scratch.redis.keys(`${scratch.prefix}public.copy_composite:*`)).concat(`${scratch.prefix}none`));
      const [result] = await syncTables(scratch.pool, scratch.redis, { schema: config.schema, pageSize });
      expect(result!.rows).toBe(480);
      await expectMirrorClean(scratch, config);
    }
  });

  it('refuses a table that is not mirrored', async () => {
    const config = await table('copy_known', 10);
    await expect(syncTables(scratch.pool, scratch.redis, { schema: config.schema, tables: [{ schema: 'public', name: 'nope' }] })).rejects.toThrow(
      /table public\.nope is not mirrored; add it with `pg-redis-mirror install --table public\.nope`/,
    );
  });
});
