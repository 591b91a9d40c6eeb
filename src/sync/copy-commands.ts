import type { TablePlan } from '../daemon/table-plan.js';
import { keyCommandsSql, type TtlMode } from '../daemon/framed-commands.js';

/**
 * SQL that frames a copy page as plain Redis commands (see daemon/framed-commands.ts), for a
 * pipe (redis/pipe.ts) rather than a script call. A key the commands did not replace whole (a
 * field of no mirrored column, a key of another type) shows in its HLEN reply: the caller
 * then writes the page again through the script, which replaces such keys. Until then, which
 * is milliseconds, a reader may see the new values beside a field that is gone; the values
 * themselves are never half-written (one HSET sets them all).
 */

export interface CopyCommandsSql {
  /** Select-list items of the page query over the table `t`. */
  inner: string;
  /**
   * Over a page query of the inner items, the key texts l1..lN and the key values c1..cN (N
   * key columns): one row of `text` (the commands), `layout` (see parseLayout), `keys`, and
   * l1..lN of its last key, where the next page starts. The last key is found by ordering on
   * the key values, not on the rows' order: numbering the rows (a window) stored every
   * framed row again, which cost a fifth of the page.
   */
  page(pageSql: string, keyColumns: number): string;
  /** For parseLayout. */
  ttlCommands: number;
}

export function copyCommandsSql(plan: TablePlan, keyTexts: readonly string[], utf8Server: boolean, ttl: TtlMode): CopyCommandsSql {
  const key = keyCommandsSql(plan, keyTexts, utf8Server, ttl);
  return {
    inner: key.inner,
    ttlCommands: key.ttlCommands,
    page(pageSql, keyColumns) {
      const n = Array.from({ length: keyColumns }, (_, i) => i + 1);
      const keys = n.flatMap((i) => [`l${i}`, `c${i}`]);
      const order = n.map((i) => `y.c${i} DESC`).join(', ');
      const last = n.map((i) => `, (pg_catalog.array_agg(y.l${i} ORDER BY ${order}))[1] AS l${i}`).join('');
      return (
        `SELECT pg_catalog.string_agg(y.cmd, '') AS text, pg_catalog.string_agg(y.e, ',') AS layout, count(*)::int AS keys${last} ` +
        `FROM (SELECT ${key.commands} AS cmd, ${key.entry} AS e, ${keys.map((k) => `x.${k}`).join(', ')} ` +
        // OFFSET 0 keeps each level whole, so each value is framed once (see framed-call.ts).
        `FROM (SELECT ${key.mid}, ${keys.map((k) => `v.${k}`).join(', ')} FROM (${pageSql}) v OFFSET 0) x) y`
      );
    },
  };
}
