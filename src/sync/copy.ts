import type pg from 'pg';
import type { RedisClient } from '../redis/cluster.js';
import { rowToWrite, type TablePlan } from '../daemon/table-plan.js';
import { writeKeys, type KeyWrite, type WriteOptions } from '../redis/replace.js';
import { framedHashSql, framedHashWrite } from '../daemon/framed-hash.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { withApplyLock } from './apply-lock.js';

export interface CopyProgress {
  table: string;
  rows: number;
  /** Estimate from the planner's statistics (exact for small tables). */
  total: number;
}

export interface CopyOptions {
  /** The install's schema: its apply lock and registry. */
  schema: string;
  pageSize?: number;
  /** The daemon waits while a chunk holds the apply lock: release it at least this often. */
  lockHoldMs?: number;
  onProgress?: (progress: CopyProgress) => void;
  /** Checked between chunks: a copy stopped early is not marked as done. */
  shouldStop?: () => boolean;
}

export interface CopyResult {
  table: string;
  rows: number;
  ms: number;
  complete: boolean;
}

type Row = (string | null)[];

/**
 * Copies every row of a mirrored table into Redis in key order: keyset pages (never OFFSET,
 * never the whole table in memory), the next page read while the previous one is written.
 * Chunks of pages hold the exclusive apply lock, so a daemon never applies a newer change
 * between our read of a row and our write of it; whatever changes meanwhile is journaled and
 * applied by the daemon after the chunk. Idempotent: an interrupted copy can simply run again.
 */
export async function copyTable(client: pg.ClientBase, redis: RedisClient, plan: TablePlan, options: CopyOptions): Promise<CopyResult> {
  const started = performance.now();
  const pageSize = options.pageSize ?? 5000;
  const lockHoldMs = options.lockHoldMs ?? 250;
  const total = await estimateRows(client, plan);
  const pages = copyPages(plan, await isUtf8Server(client));
  let rows = 0;
  let last: string[] | null = null;
  let done = false;
  const readPage = (after: string[] | null): Promise<pg.QueryResult<Row>> =>
    after === null
      ? client.query<Row>({ text: pages.first, values: [pageSize], rowMode: 'array' })
      : client.query<Row>({ text: pages.next, values: [...after, pageSize], rowMode: 'array' });

  while (!done) {
    if (options.shouldStop?.() === true) return { table: plan.display, rows, ms: performance.now() - started, complete: false };
    await withApplyLock(client, options.schema, async () => {
      const chunkStart = performance.now();
      let writing: Promise<void> = Promise.resolve();
      try {
        while (performance.now() - chunkStart < lockHoldMs) {
          const page = await readPage(last);
          await writing;
          if (page.rows.length === 0) {
            done = true;
            return;
          }
          writing = writeKeys(redis, page.rows.map(pages.toWrite), undefined, copyWriteOptions(plan));
          // Awaited below; until then a failure must not count as an unhandled rejection.
          writing.catch(() => undefined);
          rows += page.rows.length;
          last = page.rows[page.rows.length - 1]!.slice(0, plan.keyColumns.length) as string[];
          options.onProgress?.({ table: plan.display, rows, total: Math.max(total, rows) });
          if (page.rows.length < pageSize) {
            done = true;
            return;
          }
        }
      } finally {
        await writing;
      }
    });
  }
  await client.query(`UPDATE ${quoteIdent(options.schema)}.tables SET synced_at = now() WHERE rel = $1::oid`, [plan.oid]);
  options.onProgress?.({ table: plan.display, rows, total: rows });
  return { table: plan.display, rows, ms: performance.now() - started, complete: true };
}

/**
 * How copies (sync) and repairs write a table's keys: with its TTL, or removing a TTL left from
 * when the table had one (the daemon does not pay for that on every write; a changed option
 * calls for a copy or a repair anyway). No change events: a copy rewrites every row, and would
 * flood the stream with changes that are none; consumers learn of copies otherwise (README).
 */
export function copyWriteOptions(plan: Pick<TablePlan, 'ttl'>): WriteOptions {
  return { ttl: plan.ttl ?? 'persist' };
}

/**
 * Keyset pages of a table in key order, key texts first. Hash rows come framed by PostgreSQL
 * (see framed-hash.ts), as the daemon reads them: a copy handles one text per row.
 */
function copyPages(plan: TablePlan, utf8Server: boolean): { first: string; next: string; toWrite: (row: Row) => KeyWrite } {
  if (plan.format === 'json') return { first: plan.firstPageSql, next: plan.nextPageSql, toWrite: (row) => rowToWrite(plan, row) };
  const n = plan.keyColumns.length;
  const keyCols = plan.keyColumns.map((c) => `t.${quoteIdent(c.name)}`);
  const hash = framedHashSql(plan.columns, utf8Server);
  const head = `SELECT ${keyCols.map((c) => `${c}::text`).join(', ')}, ${hash.count}, ${hash.framed} FROM ${plan.source} ${hash.lateral}`;
  const order = `ORDER BY ${keyCols.join(', ')}`;
  const after = `ROW(${keyCols.join(', ')}) > ROW(${plan.keyColumns.map((c, i) => `$${i + 1}::${c.type}`).join(', ')})`;
  return {
    first: `${head} ${order} LIMIT $1`,
    next: `${head} WHERE ${after} ${order} LIMIT $${n + 1}`,
    toWrite: (row) => framedHashWrite(plan.layout.build(row.slice(0, n) as string[]), Number(row[n]), row[n + 1]!, utf8Server, plan.display),
  };
}

async function isUtf8Server(client: pg.ClientBase): Promise<boolean> {
  const result = await client.query<{ encoding: string }>(`SELECT pg_catalog.current_setting('server_encoding') AS encoding`);
  return result.rows[0]?.encoding === 'UTF8';
}

async function estimateRows(client: pg.ClientBase, plan: TablePlan): Promise<number> {
  const stats = await client.query<{ n: string }>(`SELECT reltuples::bigint AS n FROM pg_catalog.pg_class WHERE oid = $1`, [plan.oid]);
  const estimate = Number(stats.rows[0]?.n ?? -1);
  if (estimate > 100_000) return estimate;
  // Never analyzed, or small enough that counting is cheap and the bar is exact.
  const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteQualified(plan.schema, plan.name)}`);
  return Number(count.rows[0]!.n);
}
