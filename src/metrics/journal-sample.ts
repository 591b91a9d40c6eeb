import type pg from 'pg';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';

export interface JournalSample {
  /** Keys waiting in the journal (a TRUNCATE entry counts as one); estimated past SAMPLE_ROWS rows. */
  keys: number;
  /** Whether `keys` is an extrapolation rather than a count. */
  estimated: boolean;
  /** Age in seconds of the oldest change not yet applied; 0 when the journal is empty. */
  lagSeconds: number;
}

/**
 * Journal rows read per sample. The journal can hold millions of rows and a scrape must stay
 * cheap: the oldest SAMPLE_ROWS rows (an index range on the primary key) are counted exactly,
 * and a longer journal is extrapolated from the planner's row estimate.
 */
export const SAMPLE_ROWS = 10_000;

export async function sampleJournal(pool: pg.Pool, toolSchema: string): Promise<JournalSample> {
  const journal = `${quoteIdent(toolSchema)}.journal`;
  // The pool reads every value as PostgreSQL text (see db/connect.ts), numbers too.
  const result = await pool.query<{ rows: string; keys: string; age: string | null; reltuples: string | null }>(
    `SELECT count(*)::text AS rows,
  coalesce(sum(coalesce(array_length(j.keys, 1), 1)), 0)::text AS keys,
  extract(epoch FROM now() - min(j.created_at))::text AS age,
  (SELECT c.reltuples::text FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass(${quoteLiteral(journal)})) AS reltuples
FROM (SELECT keys, created_at FROM ${journal} ORDER BY id LIMIT ${SAMPLE_ROWS}) j`,
  );
  const row = result.rows[0]!;
  const rows = Number(row.rows);
  const keys = Number(row.keys);
  const lagSeconds = row.age === null ? 0 : Math.max(0, Number(row.age));
  if (rows < SAMPLE_ROWS) return { keys, estimated: false, lagSeconds };
  const totalRows = Math.max(rows, Number(row.reltuples ?? 0));
  return { keys: Math.round((keys / rows) * totalRows), estimated: true, lagSeconds };
}
