import type pg from 'pg';

export interface WriteCounts {
  transactions: number;
  /** Transactions that changed a row (an UPDATE or DELETE of a missing id changes none). */
  changed: number;
  /** Errors the application saw; each one is kept for the assertion message. */
  errors: string[];
}

/**
 * One application connection making single-row INSERT/UPDATE/DELETE transactions on
 * `table (id int PRIMARY KEY, v int NOT NULL, note text)` over ids 1..ids until told to stop.
 * Every error is recorded, never swallowed: the application's writes must not fail.
 */
export async function writeLoop(pool: pg.Pool, table: string, ids: number, seed: number, stop: () => boolean, counts: WriteCounts): Promise<void> {
  let state = seed >>> 0;
  const next = (): number => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 4_294_967_296;
  };
  const client = await pool.connect();
  try {
    while (!stop()) {
      const id = 1 + Math.floor(next() * ids);
      const pick = next();
      const text =
        pick < 0.4
          ? `INSERT INTO ${table} VALUES ($1, 1, 'i') ON CONFLICT (id) DO UPDATE SET v = ${table}.v + 1, note = 'u'`
          : pick < 0.8
            ? `UPDATE ${table} SET v = v + 1, note = 'w' || v WHERE id = $1`
            : `DELETE FROM ${table} WHERE id = $1`;
      try {
        const result = await client.query(text, [id]);
        counts.transactions++;
        if ((result.rowCount ?? 0) > 0) counts.changed++;
      } catch (error) {
        counts.errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  } finally {
    client.release();
  }
}
