import { MAX_ARGS_PER_CALL, MAX_BYTES_PER_CALL, MAX_KEYS_PER_CALL, type FramedCall } from '../redis/replace.js';
import { bulkStringSql, framedHashSql } from './framed-hash.js';
import { jsonExpression, type TablePlan } from './table-plan.js';
import { quoteIdent } from '../sql/quote.js';
import { concatTextSql } from '../sql/concat.js';

/**
 * SQL that frames whole Redis script calls (see REPLACE_LUA in redis/replace.ts): PostgreSQL
 * returns one row per call, holding the RESP text of its keys and of its arguments, instead of
 * one row per key. The daemon and copies then forward a few large texts: per-row decoding and
 * per-key framing in Node were most of their CPU, and on a small machine that CPU is the
 * PostgreSQL's and Redis' too. Used with a standalone Redis only: in a Cluster a call must hold
 * keys of one hash slot, which the daemon works out per key.
 */

/**
 * Per key, in two levels (see framedHashSql): `inner`, select-list items over the table `t`
 * (possibly LEFT JOINed: a missing row is a delete) that read what is needed once; `outer`,
 * over that query aliased `v`: its framed key (kf), its framed script arguments (af), and how
 * many those are (na).
 */
export interface KeyArgsSql {
  inner: string;
  outer: string;
}

const DELETE_ARGS = `E'$1\\r\\nd\\r\\n'`;

/** Key types whose text never holds `:` or `\\`: their values need no escaping in keys. */
const PLAIN_KEY_TYPES = new Set([20, 21, 23, 26, 2950]);

/** `keyValues`: SQL text expressions of the key column values, in key column order. */
export function keyArgsSql(plan: TablePlan, keyValues: readonly string[], utf8Server: boolean): KeyArgsSql {
  const key = `${plan.layout.sql(keyValues, plan.keyColumns.map((c) => PLAIN_KEY_TYPES.has(c.typeOid)))} AS k`;
  const kf = `${bulkStringSql('v.k', utf8Server)} AS kf`;
  if (plan.format === 'json') {
    return {
      inner: `${key}, t.${quoteIdent(plan.keyColumns[0]!.name)} IS NOT NULL AS found, ${jsonExpression(plan.columns)} AS j`,
      outer: `${kf}, CASE WHEN v.found THEN ${bulkStringSql('v.j', utf8Server, '$1\r\ns\r\n')} ELSE ${DELETE_ARGS} END AS af, CASE WHEN v.found THEN 2 ELSE 1 END AS na`,
    };
  }
  // No fields (the row is gone, or all its mirrored columns are NULL): Redis holds no empty hash.
  const hash = framedHashSql(plan.columns, utf8Server, plan.columnTypeOids);
  const n = `(${hash.count})`;
  return {
    inner: `${key}, ${hash.values}`,
    outer:
      `${kf}, CASE WHEN ${n} = 0 THEN ${DELETE_ARGS} ELSE ${concatTextSql([bulkStringSql(`${n}::text`, utf8Server, '$1\r\nh\r\n'), hash.framed])} END AS af, ` +
      `CASE WHEN ${n} = 0 THEN 1 ELSE 2 + 2 * ${n} END AS na`,
  };
}

/**
 * A call read from PostgreSQL, checked: in a SQL_ASCII database the text need not be UTF-8, and
 * decoding replaced such bytes, so the byte counts framed in SQL no longer match what is sent.
 */
export function framedCall(display: string, keys: number, keyText: string, args: number, argText: string, utf8Server: boolean): FramedCall {
  if (!utf8Server && argText.includes('\uFFFD')) {
    throw new Error(`a row of ${display} holds text that is not valid UTF-8; it cannot be mirrored`);
  }
  return { keys, keyText, args, argText };
}

/**
 * Folds the rows of `keyRows` (a query with columns kf, af, na, and the names in `carry`) into
 * script calls, in its row order: at most MAX_KEYS_PER_CALL keys each, and a new call also
 * begins at each multiple of MAX_BYTES_PER_CALL bytes and MAX_ARGS_PER_CALL arguments. Columns:
 * key_text, keys, arg_text, args, then `carry` (the value of its last row) per call, in order.
 */
export function callsSql(keyRows: string, carry: readonly string[] = []): string {
  const last = carry.map((c) => `(pg_catalog.array_agg(x.${c} ORDER BY x.rn DESC))[1] AS ${c}`);
  return (
    `SELECT pg_catalog.string_agg(x.kf, '') AS key_text, count(*)::int AS keys, pg_catalog.string_agg(x.af, '') AS arg_text, sum(x.na)::int AS args` +
    `${last.map((l) => `, ${l}`).join('')} ` +
    `FROM (SELECT x.*, row_number() OVER w AS rn, sum(pg_catalog.octet_length(x.kf) + pg_catalog.octet_length(x.af)) OVER w AS bytes, sum(x.na) OVER w AS argc ` +
    // OFFSET 0 keeps the subquery whole: flattened into the window's level, each key's framing
    // was computed twice (for the window's byte count and for the output), doubling its cost.
    `FROM (${keyRows} OFFSET 0) x WINDOW w AS (ROWS UNBOUNDED PRECEDING)) x ` +
    `GROUP BY (x.rn - 1) / ${MAX_KEYS_PER_CALL}, (x.bytes - 1) / ${MAX_BYTES_PER_CALL}, (x.argc - 1) / ${MAX_ARGS_PER_CALL} ORDER BY min(x.rn)`
  );
}
