import type pg from 'pg';
import { inTransaction } from '../db/transaction.js';
import { applyLockKey } from '../install/names.js';

/**
 * Runs `fn` in a transaction that holds the exclusive apply lock, so no daemon batch writes
 * Redis meanwhile (see applyLockKey). Keep `fn` short: the daemon waits for it.
 */
export function withApplyLock<T>(client: pg.ClientBase, toolSchema: string, fn: () => Promise<T>): Promise<T> {
  const [a, b] = applyLockKey(toolSchema);
  return inTransaction(client, fn, `BEGIN; SELECT pg_catalog.pg_advisory_xact_lock(${a}, ${b})`);
}
