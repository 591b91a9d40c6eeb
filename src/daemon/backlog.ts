import type pg from 'pg';
import { quoteIdent } from '../sql/quote.js';

export interface Backlog {
  entries: number;
  /** Age of the oldest journal entry in seconds, null when the journal is empty. */
  oldestAgeSeconds: number | null;
}

export async function readBacklog(pool: pg.Pool | pg.ClientBase, toolSchema: string): Promise<Backlog> {
  const result = await pool.query<{ entries: string; age: string | null }>(
    `SELECT count(*) AS entries, extract(epoch FROM now() - min(created_at)) AS age FROM ${quoteIdent(toolSchema)}.journal`,
  );
  const row = result.rows[0]!;
  return { entries: Number(row.entries), oldestAgeSeconds: row.age === null ? null : Number(row.age) };
}

/**
 * Resolves once the journal is empty. Journal rows are deleted in the same transaction that
 * follows their Redis writes, so an empty journal means every committed change is in Redis.
 */
export async function waitForEmptyJournal(pool: pg.Pool, toolSchema: string, timeoutMs = 30_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await pool.query<{ empty: string }>(`SELECT NOT EXISTS (SELECT 1 FROM ${quoteIdent(toolSchema)}.journal) AS empty`);
    if (result.rows[0]?.empty === 't') return;
    if (Date.now() > deadline) throw new Error(`journal not drained within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
