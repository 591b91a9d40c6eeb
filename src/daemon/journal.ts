import type pg from 'pg';
import { quoteIdent } from '../sql/quote.js';

export interface JournalEntry {
  id: bigint;
  rel: number;
  op: 'k' | 't';
  /** Key tuples, in key column order. */
  keys: string[][];
  createdAt: string;
}

/**
 * Claims the oldest journal rows, at most `maxKeys` keys (always at least one row), by deleting
 * them inside the caller's transaction: if applying them fails, ROLLBACK puts them back.
 * `id = ANY(ARRAY(subquery))` keeps the plan linear however stale the queue's statistics are
 * (an `IN (... LIMIT n)` plan can re-run the subquery per row). The limit is written into the
 * text (an integer of ours, not input) so the claim can share one round trip with BEGIN.
 */
export function claimSql(toolSchema: string, maxKeys: number): string {
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new Error(`batch size must be a positive integer, not ${maxKeys}`);
  const journal = `${quoteIdent(toolSchema)}.journal`;
  return `DELETE FROM ${journal}
WHERE id = ANY(ARRAY(
  SELECT id FROM (
    SELECT id, n, sum(n) OVER (ORDER BY id) AS upto
    FROM (SELECT id, coalesce(array_length(keys, 1), 1) AS n FROM ${journal} ORDER BY id LIMIT ${maxKeys}) j
  ) s
  WHERE upto - n < ${maxKeys}
))
RETURNING id, rel, op, array_to_json(keys)::text, created_at`;
}

/**
 * Runs `sqlText`, whose last statement is the claim (earlier ones may open the transaction,
 * all in one round trip), and returns the claimed entries in journal order.
 */
export async function claimBatch(client: pg.ClientBase, sqlText: string): Promise<JournalEntry[]> {
  const result = await client.query<(string | null)[]>({ text: sqlText, rowMode: 'array' });
  const results = Array.isArray(result) ? (result as pg.QueryResult<(string | null)[]>[]) : [result];
  const entries = results[results.length - 1]!.rows.map((row): JournalEntry => {
    const keys = row[3] === null ? [] : (JSON.parse(row[3]!) as (string | string[])[]);
    return {
      id: BigInt(row[0]!),
      rel: Number(row[1]),
      op: row[2] === 't' ? 't' : 'k',
      keys: keys.map((k) => (Array.isArray(k) ? k : [k])),
      createdAt: row[4]!,
    };
  });
  // RETURNING has no order; changes must be applied in journal order.
  return entries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
