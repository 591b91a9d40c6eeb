import type pg from 'pg';
import { applyLockKey } from '../install/names.js';

/**
 * Runs `fn` in a transaction that holds the exclusive apply lock, so no daemon batch writes
 * Redis meanwhile (see applyLockKey). Keep `fn` short: the daemon waits for it.
 */
export async function withApplyLock<T>(client: pg.ClientBase, toolSchema: string, fn: () => Promise<T>): Promise<T> {
  const [a, b] = applyLockKey(toolSchema);
  await client.query(`BEGIN; SELECT pg_catalog.pg_advisory_xact_lock(${a}, ${b})`);
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
