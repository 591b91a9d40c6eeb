import type { TablePlan } from '../daemon/table-plan.js';
import { keyArgsSql } from '../daemon/framed-call.js';
import { bulkStringSql, framedHashSql } from '../daemon/framed-hash.js';
import { bulkString } from '../redis/encoded-command.js';
import { quoteLiteral } from '../sql/quote.js';
import { concatTextSql } from '../sql/concat.js';

/**
 * SQL that frames a copy page as plain Redis commands, for a pipe (redis/pipe.ts) rather than
 * a script call: per key of a hash table HSET (DEL for a row with no fields), HLEN, and the
 * TTL command; per key of a json table SET and the TTL command.
 *
 * Without the script, a key is not replaced whole: HSET leaves fields the row no longer has
 * (a column now NULL or no longer mirrored) and fails on a key of another type. HLEN shows
 * both, as a field count other than the row's (or an error): the caller then writes the page
 * again through the script, which replaces such keys. Until then, which is milliseconds, a
 * reader may see the new values beside a field that is gone; the values themselves are never
 * half-written (one HSET sets them all).
 */

/** How a copy treats TTLs (see copyWriteOptions): set this one, or remove any. */
export type CopyTtl = number | 'persist';

export interface CopyCommandsSql {
  /** Select-list items of the page query over the table `t`. */
  inner: string;
  /**
   * Over a page query of the inner items, the key texts l1..lN and the key values c1..cN (N
   * key columns): one row of `text` (the commands), `fields` (each key's field count,
   * comma-separated: the HLEN each must reply), `keys`, and l1..lN of its last key, where the
   * next page starts. The last key is found by ordering on the key values, not on the rows'
   * order: numbering the rows (a window) stored every framed row again, which cost a fifth of
   * the page.
   */
  page(pageSql: string, keyColumns: number): string;
  /** Replies per key; the HLEN reply is the second (hash tables only). */
  repliesPerKey: number;
  checksFields: boolean;
}

export function copyCommandsSql(plan: TablePlan, keyTexts: readonly string[], utf8Server: boolean, ttl: CopyTtl): CopyCommandsSql {
  const inner = keyArgsSql(plan, keyTexts, utf8Server).inner;
  const ttlHead = ttl === 'persist' ? '*2\r\n$7\r\nPERSIST\r\n' : '*3\r\n$6\r\nEXPIRE\r\n';
  const ttlTail = ttl === 'persist' ? '' : bulkString(String(ttl));
  const kf = `${bulkStringSql('v.k', utf8Server)} AS kf`;
  const lit = (text: string): string => quoteLiteral(text);
  const ttlCommand = ttlTail === '' ? [lit(ttlHead), 'x.kf'] : [lit(ttlHead), 'x.kf', lit(ttlTail)];
  let mid: string;
  let cmd: string;
  if (plan.format === 'json') {
    mid = `${kf}, 1 AS n, ${bulkStringSql('v.j', utf8Server)} AS f`;
    // SET drops any TTL itself: a key to persist needs no second command.
    cmd = concatTextSql([lit('*3\r\n$3\r\nSET\r\n'), 'x.kf', 'x.f', ...(ttl === 'persist' ? [] : ttlCommand)]);
  } else {
    const hash = framedHashSql(plan.columns, utf8Server, plan.columnTypeOids);
    mid = `${kf}, ${hash.count} AS n, ${hash.framed} AS f`;
    // A row without fields has no key: Redis holds no empty hash.
    const write = `CASE WHEN x.n = 0 THEN ${lit('*2\r\n$3\r\nDEL\r\n')} || x.kf ELSE ${concatTextSql([lit('*'), '(2 + 2 * x.n)::pg_catalog.text', lit('\r\n$4\r\nHSET\r\n'), 'x.kf', 'x.f'])} END`;
    cmd = concatTextSql([write, lit('*2\r\n$4\r\nHLEN\r\n'), 'x.kf', ...ttlCommand]);
  }
  const repliesPerKey = plan.format === 'json' ? (ttl === 'persist' ? 1 : 2) : 3;
  return {
    inner,
    repliesPerKey,
    checksFields: plan.format !== 'json',
    page(pageSql, keyColumns) {
      const n = Array.from({ length: keyColumns }, (_, i) => i + 1);
      const keys = n.flatMap((i) => [`l${i}`, `c${i}`]);
      const order = n.map((i) => `y.c${i} DESC`).join(', ');
      const last = n.map((i) => `, (pg_catalog.array_agg(y.l${i} ORDER BY ${order}))[1] AS l${i}`).join('');
      return (
        `SELECT pg_catalog.string_agg(y.cmd, '') AS text, pg_catalog.string_agg(y.n::pg_catalog.text, ',') AS fields, count(*)::int AS keys${last} ` +
        `FROM (SELECT ${cmd} AS cmd, x.n, ${keys.map((k) => `x.${k}`).join(', ')} ` +
        // OFFSET 0 keeps each level whole, so each value is framed once (see framed-call.ts).
        `FROM (SELECT ${mid}, ${keys.map((k) => `v.${k}`).join(', ')} FROM (${pageSql}) v OFFSET 0) x) y`
      );
    },
  };
}

/** The comma-separated field counts of a page, as the pipe checks them. */
export function parseCounts(text: string, keys: number): Int32Array {
  const counts = new Int32Array(keys);
  let at = 0;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 44) {
      counts[at++] = value;
      value = 0;
    } else {
      value = value * 10 + (c - 48);
    }
  }
  counts[at] = value;
  return counts;
}
