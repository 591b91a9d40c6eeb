import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { RedisClient } from '../redis/cluster.js';
import { rowToWrite, type TablePlan } from '../daemon/table-plan.js';
import { writeFramedCalls, writeKeys, type KeyWrite, type WriteOptions } from '../redis/replace.js';
import { isCluster } from '../redis/cluster.js';
import { callsSql, framedCall, keyArgsSql } from '../daemon/framed-call.js';
import { framedHashSql, framedHashWrite } from '../daemon/framed-hash.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { withApplyLock } from './apply-lock.js';
import { RespPipe } from '../redis/pipe.js';
import { copyCommandsSql } from './copy-commands.js';
import { parseLayout, type TtlMode } from '../daemon/framed-commands.js';
import { hasExpiringKeys } from '../redis/expiring-keys.js';

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
  const total = await estimateRows(client, plan);
  const utf8Server = await isUtf8Server(client);
  // Not for a cluster (whose keys are written per slot), nor where the pipe cannot connect.
  const pipe = isCluster(redis) ? null : await RespPipe.open(redis);
  try {
    // Keys of a table without a ttl need no PERSIST where no key has a TTL at all.
    const ttl: TtlMode = plan.ttl ?? (pipe !== null && !isCluster(redis) && !(await hasExpiringKeys(redis)) ? null : 'persist');
    const pages = isCluster(redis) ? keyPages(plan, utf8Server) : pipe === null ? callPages(plan, utf8Server) : pipedPages(plan, utf8Server, pipe, ttl);
    return await copyPages(client, redis, plan, pages, total, started, options);
  } finally {
    pipe?.close();
  }
}

async function copyPages(client: pg.ClientBase, redis: RedisClient, plan: TablePlan, pages: Pages, total: number, started: number, options: CopyOptions): Promise<CopyResult> {
  const pageSize = options.pageSize ?? 5000;
  const lockHoldMs = options.lockHoldMs ?? 250;
  let rows = 0;
  let last: string[] | null = null;
  let done = false;

  while (!done) {
    if (options.shouldStop?.() === true) return { table: plan.display, rows, ms: performance.now() - started, complete: false };
    await withApplyLock(client, options.schema, async () => {
      const chunkStart = performance.now();
      let writing: Promise<void> = Promise.resolve();
      // The next page is asked for as soon as a page arrives, before this one is written:
      // PostgreSQL then frames it while Redis takes the one before, instead of waiting for it.
      let reading: Promise<Page> = pages.read(client, last, pageSize);
      try {
        for (;;) {
          const page = await reading;
          if (page.rows === 0) {
            done = true;
            return;
          }
          const more = page.rows >= pageSize && performance.now() - chunkStart < lockHoldMs;
          if (more) {
            reading = pages.read(client, page.last, pageSize);
            // Awaited on the next turn; until then a failure must not count as an unhandled rejection.
            reading.catch(() => undefined);
          }
          await writing;
          writing = page.write(redis, copyWriteOptions(plan));
          writing.catch(() => undefined);
          rows += page.rows;
          last = page.last;
          options.onProgress?.({ table: plan.display, rows, total: Math.max(total, rows) });
          if (page.rows < pageSize) {
            done = true;
            return;
          }
          if (!more) return;
        }
      } finally {
        await reading.catch(() => undefined);
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

/** One keyset page, read and ready to write. */
interface Page {
  rows: number;
  /** Key texts of its last row: the next page starts after it. */
  last: string[] | null;
  write(redis: RedisClient, options: WriteOptions): Promise<void>;
}

interface Pages {
  read(client: pg.ClientBase, after: string[] | null, pageSize: number): Promise<Page>;
}

/**
 * Keyset queries in key order: the first page, and the page after given key texts ($1..$n).
 * The limit follows as a parameter, or is written in when given: a prepared statement's
 * generic plan, not knowing the limit, could choose to sort the whole table.
 */
function pageQueries(plan: TablePlan, select: string, from: string, limit?: number): { first: string; next: string } {
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw new Error(`page size must be a positive integer, not ${limit}`);
  const keyCols = plan.keyColumns.map((c) => `t.${quoteIdent(c.name)}`);
  const order = `ORDER BY ${keyCols.join(', ')}`;
  const after = `ROW(${keyCols.join(', ')}) > ROW(${plan.keyColumns.map((c, i) => `$${i + 1}::${c.type}`).join(', ')})`;
  return {
    first: `SELECT ${select} FROM ${from} ${order} LIMIT ${limit ?? '$1'}`,
    next: `SELECT ${select} FROM ${from} WHERE ${after} ${order} LIMIT ${limit ?? `$${plan.keyColumns.length + 1}`}`,
  };
}

/**
 * Pages whose rows PostgreSQL frames as whole script calls (see daemon/framed-call.ts): a copy
 * then handles a few texts per page, not an object per row (whose garbage collection was half
 * of its CPU). For a standalone Redis.
 */
function callPages(plan: TablePlan, utf8Server: boolean): Pages {
  const keyTexts = plan.keyColumns.map((c) => `t.${quoteIdent(c.name)}::text`);
  const perKey = keyArgsSql(plan, keyTexts, utf8Server);
  const carry = keyTexts.map((_, i) => `l${i + 1}`);
  const queries = pageQueries(plan, `${perKey.inner}, ${keyTexts.map((k, i) => `${k} AS ${carry[i]}`).join(', ')}`, plan.source);
  const framed = (page: string): string => callsSql(`SELECT ${perKey.outer}, ${carry.map((c) => `v.${c}`).join(', ')} FROM (${page}) v`, carry);
  const calls = { first: framed(queries.first), next: framed(queries.next) };
  return {
    async read(client, after, pageSize) {
      const result = await client.query<CallRow>(
        after === null ? { text: calls.first, values: [pageSize] } : { text: calls.next, values: [...after, pageSize] },
      );
      const framed = result.rows.map((row) => framedCall(plan.display, Number(row.keys), row.key_text, Number(row.args), row.arg_text, utf8Server));
      const lastRow = result.rows[result.rows.length - 1];
      return {
        rows: framed.reduce((sum, call) => sum + call.keys, 0),
        last: lastRow === undefined ? null : carry.map((c) => lastRow[c] as string),
        write: (redis, options) => writeFramedCalls(redis, framed, undefined, options),
      };
    },
  };
}

/**
 * Pages framed as plain commands (see copy-commands.ts), written through a pipe. A page whose
 * replies show a key that HSET did not replace whole (an error, or a field count other than
 * the row's) is written again through the script, read afresh: a row changed since is
 * journaled, and the daemon applies it after this chunk anyway.
 */
function pipedPages(plan: TablePlan, utf8Server: boolean, pipe: RespPipe, ttl: TtlMode): Pages {
  const keyTexts = plan.keyColumns.map((c) => `t.${quoteIdent(c.name)}::text`);
  const commands = copyCommandsSql(plan, keyTexts, utf8Server, ttl);
  const carry = keyTexts.map((_, i) => `l${i + 1}`);
  const keySelect = plan.keyColumns.map((c, i) => `${keyTexts[i]} AS l${i + 1}, t.${quoteIdent(c.name)} AS c${i + 1}`);
  const fallback = callPages(plan, utf8Server);
  let statements: { size: number; first: NamedQuery; next: NamedQuery } | undefined;
  return {
    async read(client, after, pageSize) {
      if (statements?.size !== pageSize) {
        const queries = pageQueries(plan, `${commands.inner}, ${keySelect.join(', ')}`, plan.source, pageSize);
        statements = { size: pageSize, first: named(commands.page(queries.first, carry.length)), next: named(commands.page(queries.next, carry.length)) };
      }
      const result = await client.query<PipedRow>(after === null ? statements.first : { ...statements.next, values: after });
      const row = result.rows[0];
      const keys = row === undefined ? 0 : Number(row.keys);
      if (row === undefined || keys === 0) return { rows: 0, last: null, write: async () => undefined };
      if (!utf8Server && row.text.includes('\uFFFD')) throw new Error(`a row of ${plan.display} holds text that is not valid UTF-8; it cannot be mirrored`);
      const layout = parseLayout(row.layout, keys, commands.ttlCommands);
      return {
        rows: keys,
        last: carry.map((c) => row[c] as string),
        async write(redis, options) {
          const tally = await pipe.send(row.text, { replies: layout.commands, checks: layout.checks });
          if (tally.errors === 0 && tally.mismatches === 0) return;
          const again = await fallback.read(client, after, pageSize);
          await again.write(redis, options);
        },
      };
    },
  };
}

interface NamedQuery {
  name: string;
  text: string;
}

/**
 * A statement prepared once per connection: planning the framing query took a tenth of a
 * page's time. Named by its text, which differs per table and option.
 */
function named(text: string): NamedQuery {
  return { name: `prm_copy_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`, text };
}

interface PipedRow {
  text: string;
  layout: string;
  keys: string | number;
  [carried: string]: string | number;
}

/** Counts as text: the pool may parse no type at all (see db/connect.ts). */
interface CallRow {
  key_text: string;
  keys: string | number;
  arg_text: string;
  args: string | number;
  [carried: string]: string | number;
}

/**
 * Pages of one row per key, key texts first, for a Redis Cluster (a call holds keys of one
 * hash slot, worked out here). Hash rows come framed by PostgreSQL (see framed-hash.ts).
 */
function keyPages(plan: TablePlan, utf8Server: boolean): Pages {
  const n = plan.keyColumns.length;
  let queries: { first: string; next: string };
  let toWrite: (row: Row) => KeyWrite;
  if (plan.format === 'json') {
    queries = { first: plan.firstPageSql, next: plan.nextPageSql };
    toWrite = (row) => rowToWrite(plan, row);
  } else {
    const hash = framedHashSql(plan.columns, utf8Server, plan.columnTypeOids);
    const keyNames = plan.keyColumns.map((_, i) => `l${i + 1}`);
    const inner = pageQueries(plan, `${plan.keyColumns.map((c, i) => `t.${quoteIdent(c.name)}::text AS ${keyNames[i]}`).join(', ')}, ${hash.values}`, plan.source);
    const outer = (page: string): string => `SELECT ${keyNames.map((k) => `v.${k}`).join(', ')}, ${hash.count}, ${hash.framed} FROM (${page}) v`;
    queries = { first: outer(inner.first), next: outer(inner.next) };
    toWrite = (row) => framedHashWrite(plan.layout.build(row.slice(0, n) as string[]), Number(row[n]), row[n + 1]!, utf8Server, plan.display);
  }
  return {
    async read(client, after, pageSize) {
      const result = await client.query<Row>(
        after === null ? { text: queries.first, values: [pageSize], rowMode: 'array' } : { text: queries.next, values: [...after, pageSize], rowMode: 'array' },
      );
      const lastRow = result.rows[result.rows.length - 1];
      return {
        rows: result.rows.length,
        last: lastRow === undefined ? null : (lastRow.slice(0, n) as string[]),
        write: (redis, options) => writeKeys(redis, result.rows.map(toWrite), undefined, options),
      };
    },
  };
}

async function isUtf8Server(client: pg.ClientBase): Promise<boolean> {
  const result = await client.query<{ encoding: string }>(`SELECT pg_catalog.current_setting('server_encoding') AS encoding`);
  return result.rows[0]?.encoding === 'UTF8';
}

async function estimateRows(client: pg.ClientBase, plan: TablePlan): Promise<number> {
  // A partitioned table holds no rows itself: its partitions' estimates add up to its own.
  const stats = await client.query<{ n: string }>(
    `SELECT coalesce((SELECT sum(greatest(c.reltuples, 0))::bigint FROM pg_catalog.pg_partition_tree($1::oid::regclass) t
                      JOIN pg_catalog.pg_class c ON c.oid = t.relid WHERE t.isleaf),
                     (SELECT reltuples::bigint FROM pg_catalog.pg_class WHERE oid = $1)) AS n`,
    [plan.oid],
  );
  const estimate = Number(stats.rows[0]?.n ?? -1);
  if (estimate > 100_000) return estimate;
  // Never analyzed, or small enough that counting is cheap and the bar is exact.
  const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteQualified(plan.schema, plan.name)}`);
  return Number(count.rows[0]!.n);
}
