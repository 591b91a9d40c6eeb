/**
 * install and uninstall while the application writes: no writer ever sees an error, and no
 * writer waits long, even when a long transaction holds a table that install must lock.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install, uninstall } from '../src/install/install.js';
import { syncTables } from '../src/sync/sync.js';
import { isUserError } from '../src/errors.js';
import { createScratch, expectMirrorClean, settle, sleep, startDaemon, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;

beforeAll(async () => {
  scratch = await createScratch('online');
  await scratch.pool.query(`
    CREATE TABLE online_a (id int PRIMARY KEY, v int NOT NULL, note text);
    CREATE TABLE online_b (id int PRIMARY KEY, a_id int, v text);
    INSERT INTO online_a SELECT g, g, 'seed' FROM generate_series(1, 2000) g;
    INSERT INTO online_b SELECT g, g, 'seed' FROM generate_series(1, 2000) g;
  `);
});
afterAll(async () => {
  await scratch.cleanup();
});

interface Writers {
  errors: string[];
  statements: number;
  /** Longest single statement or transaction, in ms. */
  maxMs: number;
  stop(): Promise<void>;
}

/**
 * Application-like writers, each in a key range of its own (so they never conflict with each
 * other): single INSERT/UPDATE/DELETE statements and primary-key changes on both tables, and
 * transactions that write B then A (the order in which a deadlock with install could arise).
 */
function startWriters(pool: pg.Pool, count = 4): Writers {
  const state = { errors: [] as string[], statements: 0, maxMs: 0 };
  let running = true;
  const timed = async (fn: () => Promise<unknown>): Promise<void> => {
    const started = performance.now();
    try {
      await fn();
    } catch (error) {
      state.errors.push(error instanceof Error ? error.message : String(error));
    }
    state.maxMs = Math.max(state.maxMs, performance.now() - started);
    state.statements += 1;
  };
  const loop = async (w: number): Promise<void> => {
    const base = 100_000 * (w + 1);
    const id = (): number => base + Math.floor(Math.random() * 300);
    const client = await pool.connect();
    try {
      while (running) {
        const table = Math.random() < 0.5 ? 'online_a' : 'online_b';
        const value = table === 'online_a' ? 'v' : 'a_id';
        switch (Math.floor(Math.random() * 5)) {
          case 0:
            await timed(() => client.query(`INSERT INTO ${table} (id, ${value}) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET ${value} = ${table}.${value} + 1`, [id()]));
            break;
          case 1:
            await timed(() => client.query(`UPDATE ${table} SET ${value} = ${value} + 1 WHERE id BETWEEN $1 AND $1 + 5`, [id()]));
            break;
          case 2:
            await timed(() => client.query(`DELETE FROM ${table} WHERE id = $1`, [id()]));
            break;
          case 3: {
            const [from, to] = [id(), id()];
            await timed(() => client.query(`UPDATE ${table} SET id = $2 WHERE id = $1 AND NOT EXISTS (SELECT FROM ${table} WHERE id = $2)`, [from, to]));
            break;
          }
          default:
            await timed(async () => {
              await client.query('BEGIN');
              try {
                await client.query(`INSERT INTO online_b (id, a_id) VALUES ($1, 0) ON CONFLICT (id) DO UPDATE SET v = 'tx'`, [id()]);
                await sleep(5);
                await client.query(`UPDATE online_a SET note = 'tx' WHERE id = $1`, [id()]);
                await client.query('COMMIT');
              } catch (error) {
                await client.query('ROLLBACK');
                throw error;
              }
            });
        }
      }
    } finally {
      client.release();
    }
  };
  const loops = Array.from({ length: count }, (_, w) => loop(w));
  return {
    get errors() {
      return state.errors;
    },
    get statements() {
      return state.statements;
    },
    get maxMs() {
      return state.maxMs;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** A transaction that writes `table` and stays open for `ms`: what install must not queue behind. */
async function longTransaction(pool: pg.Pool, table: string, ms: number): Promise<{ done: Promise<void> }> {
  const client = await pool.connect();
  await client.query('BEGIN');
  await client.query(`UPDATE ${table} SET v = v WHERE id = 1`);
  const done = sleep(ms)
    .then(() => client.query('COMMIT'))
    .then(() => client.release());
  return { done };
}

async function triggerCount(): Promise<number> {
  const r = await scratch.pool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_trigger WHERE tgrelid IN ('online_a'::regclass, 'online_b'::regclass) AND NOT tgisinternal`);
  return Number(r.rows[0]!.n);
}

const LONG_MS = 4000;
/** Far below LONG_MS: a writer never waits for the long transaction through install's lock. */
const WRITER_BOUND_MS = 2500;

describe('install and uninstall under a live write load', () => {
  it('install, sync and uninstall with writers running and a long transaction open: zero writer errors, short waits, a clean mirror', async () => {
    const config = scratch.config(['public.online_a', 'public.online_b'], { schema: 'mirror_online' });
    const retries: number[] = [];
    let writers = startWriters(scratch.pool);
    let daemon: MirrorDaemon | undefined;
    try {
      await sleep(300);
      const long = await longTransaction(scratch.pool, 'online_a', LONG_MS);
      const started = performance.now();
      await install(config, scratch.pool, { onRetry: ({ attempt }) => retries.push(attempt) });
      // It had to wait for the long transaction, by retrying, not by queueing.
      expect(performance.now() - started).toBeGreaterThan(LONG_MS - 1000);
      expect(retries.length).toBeGreaterThan(0);
      await long.done;
      expect(await triggerCount()).toBe(10);

      daemon = await startDaemon(config);
      await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
      await sleep(500);
      await writers.stop();
      expect(writers.errors).toEqual([]);
      expect(writers.maxMs).toBeLessThan(WRITER_BOUND_MS);
      expect(writers.statements).toBeGreaterThan(100);
      await settle(scratch, config);
      const reports = await expectMirrorClean(scratch, config);
      expect(reports.map((r) => r.rows).reduce((a, b) => a + b)).toBeGreaterThan(4000);
      await daemon.stop();
      daemon = undefined;

      writers = startWriters(scratch.pool);
      await sleep(300);
      const longB = await longTransaction(scratch.pool, 'online_b', LONG_MS);
      retries.length = 0;
      await uninstall(config, scratch.pool, { onRetry: ({ attempt }) => retries.push(attempt) });
      expect(retries.length).toBeGreaterThan(0);
      await longB.done;
      await sleep(300);
      await writers.stop();
      expect(writers.errors).toEqual([]);
      expect(writers.maxMs).toBeLessThan(WRITER_BOUND_MS);
      expect(await triggerCount()).toBe(0);
      expect((await scratch.pool.query(`SELECT to_regnamespace('mirror_online') AS ns`)).rows[0].ns).toBeNull();
    } finally {
      await writers.stop();
      await daemon?.stop();
    }
  });

  it('gives up with one clear line, having changed nothing, when the lock never comes', async () => {
    const config = scratch.config(['public.online_a'], { schema: 'mirror_online_give_up' });
    const writers = startWriters(scratch.pool, 2);
    try {
      const long = await longTransaction(scratch.pool, 'online_a', 3000);
      const error = await install(config, scratch.pool, { lockTimeoutMs: 100, attempts: 2 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isUserError(error)).toBe(true);
      expect((error as Error).message).toMatch(/^install gave up after 2 attempts to lock the mirrored tables \(each waiting 100 ms\): canceling statement due to lock timeout; a long-running transaction/);
      expect((error as Error).message).not.toContain('\n');
      await long.done;
      expect(await triggerCount()).toBe(0);
      expect((await scratch.pool.query(`SELECT to_regnamespace('mirror_online_give_up') AS ns`)).rows[0].ns).toBeNull();
    } finally {
      await writers.stop();
    }
    expect(writers.errors).toEqual([]);
  });
});
