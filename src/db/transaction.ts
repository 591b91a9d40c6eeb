import type pg from 'pg';

/** Runs `fn` between `begin` (BEGIN, possibly followed by more statements) and COMMIT; ROLLBACK on failure. */
export async function inTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>, begin = 'BEGIN'): Promise<T> {
  await client.query(begin);
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
