import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { install } from '../src/install/install.js';
import { syncTables } from '../src/sync/sync.js';
import { createPool } from '../src/db/connect.js';
import { JournalVacuum } from '../src/daemon/journal-vacuum.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createScratch, expectMirrorClean, settle, startDaemon, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
const role = `prm vacuum ${process.pid}`;
beforeAll(async () => {
  scratch = await createScratch('vacuum');
});
afterAll(async () => {
  await scratch.pool.query(`DROP OWNED BY ${quoteIdent(role)}; DROP ROLE ${quoteIdent(role)}`).catch(() => undefined);
  await scratch.cleanup();
});

async function journalVacuums(schema: string): Promise<number> {
  const r = await scratch.pool.query<{ n: string }>(
    `SELECT vacuum_count AS n FROM pg_catalog.pg_stat_user_tables WHERE schemaname = $1 AND relname = 'journal'`,
    [schema],
  );
  return Number(r.rows[0]?.n ?? 0);
}

/** Each statement is a journal row of its own: `statements` of them in one transaction. */
async function updateOneByOne(statements: number): Promise<void> {
  await scratch.pool.query(`DO $$ BEGIN FOR i IN 1..${statements} LOOP UPDATE t SET v = v + 1 WHERE id = 1 + i % 100; END LOOP; END $$`);
}

describe('the journal is vacuumed by the daemon', () => {
  it('after it has deleted many journal rows, even with autovacuum off for the journal', async () => {
    await scratch.pool.query(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 100) g`);
    const config = scratch.config(['public.t']);
    await install(config, scratch.pool);
    await scratch.pool.query(`ALTER TABLE ${quoteIdent(config.schema)}.journal SET (autovacuum_enabled = false)`);
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
    const daemon = await startDaemon(config);
    try {
      const before = await journalVacuums(config.schema);
      await updateOneByOne(12_000);
      await settle(scratch, config);
      const deadline = Date.now() + 10_000;
      while ((await journalVacuums(config.schema)) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(await journalVacuums(config.schema)).toBeGreaterThan(before);
      await expectMirrorClean(scratch, config);
    } finally {
      await daemon.stop();
    }
  });

  it('never waits for the application: an open writing transaction does not hold it up, nor is it locked out', async () => {
    const config = scratch.config(['public.t']);
    const journal = `${quoteIdent(config.schema)}.journal`;
    // Journal rows, deleted as a drain would: the journal's last pages are empty.
    await updateOneByOne(2000);
    await scratch.pool.query(`DELETE FROM ${journal}`);
    const writer = await scratch.pool.connect();
    try {
      // The lock every capturing write holds on the journal until its transaction ends (taken
      // here without writing a journal row, which would keep the last page in use). A vacuum
      // that would cut off the empty pages waits for such locks, trying for 5 s, then holds
      // off every writer while it cuts.
      await writer.query(`BEGIN; LOCK TABLE ${journal} IN ROW EXCLUSIVE MODE`);
      const size = async (): Promise<number> =>
        Number((await scratch.pool.query<{ n: string }>(`SELECT pg_catalog.pg_relation_size($1::regclass) AS n`, [journal])).rows[0]!.n);
      const before = await size();
      const vacuum = new JournalVacuum(scratch.pool, config.schema, pino({ level: 'silent' }));
      const started = performance.now();
      vacuum.deletedRows(10_000);
      await vacuum.stop();
      expect(performance.now() - started).toBeLessThan(2500);
      expect(await size()).toBe(before);
    } finally {
      await writer.query('ROLLBACK');
      writer.release();
    }
  });

  it('a role that does not own the journal is told so once, and PostgreSQL is not asked again', async () => {
    const config = scratch.config(['public.t']);
    await scratch.pool.query(`CREATE ROLE ${quoteIdent(role)} LOGIN; GRANT USAGE ON SCHEMA ${quoteIdent(config.schema)} TO ${quoteIdent(role)}`);
    const url = new URL(scratch.databaseUrl);
    url.username = encodeURIComponent(role);
    const pool = createPool(url.toString(), { max: 1 });
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    try {
      const vacuum = new JournalVacuum(pool, config.schema, logger);
      const warnings = (): string[] => lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40).map((l) => l.msg);
      vacuum.deletedRows(10_000);
      const deadline = Date.now() + 5000;
      while (warnings().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(warnings()).toEqual([expect.stringMatching(/cannot VACUUM .*journal \(only its owner can\).*autovacuum/)]);
      // Past the least time between two vacuums, with plenty deleted: still no second attempt.
      const logged = lines.length;
      await new Promise((r) => setTimeout(r, 2100));
      vacuum.deletedRows(1_000_000);
      await vacuum.stop();
      expect(lines).toHaveLength(logged);
    } finally {
      await pool.end();
    }
  });
});
