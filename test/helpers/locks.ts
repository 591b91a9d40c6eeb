import type pg from 'pg';
import { wakeLockKey } from '../../src/install/names.js';

/**
 * Whether a daemon sleeps holding its wake lock (it then wakes only on NOTIFY or the poll).
 * A two-int advisory key shows in pg_locks as classid, objid (both unsigned) and objsubid 2.
 */
export async function wakeLockHeld(pool: pg.Pool, toolSchema: string): Promise<boolean> {
  const [a, b] = wakeLockKey(toolSchema);
  const r = await pool.query(
    `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND classid = $1 AND objid = $2 AND objsubid = 2`,
    [a >>> 0, b >>> 0],
  );
  return r.rowCount === 1;
}
