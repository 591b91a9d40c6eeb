import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { concatTextSql } from '../sql/concat.js';
import type { KeyWrite } from '../redis/replace.js';

/**
 * SQL that returns a row's hash already framed as Redis protocol arguments (field, value,
 * field, value...), so the daemon and copies handle one text per row instead of one per
 * column: their CPU, not PostgreSQL's or Redis', was the limit. In two levels, so that each
 * value is converted to text once (a value named twice in one level is computed twice, and a
 * LATERAL subquery is either pasted in just so or run again for every row):
 * - values: select-list items of an inner query over the table aliased `t`: v0, v1... each
 *   column printed as PostgreSQL prints it;
 * - count: over that inner query aliased `v`, how many fields the row has (non-NULL columns);
 * - framed: over it too, the fields, each `$<bytes>\r\n<name>\r\n$<bytes>\r\n<value>\r\n`.
 * Byte counts are of the UTF-8 text the connection receives (client_encoding UTF8): in a
 * database of another encoding they are taken after converting to UTF-8.
 */
export interface FramedHashSql {
  values: string;
  count: string;
  framed: string;
}

const CRLF = `E'\\r\\n'`;

/** A function takes at most 100 arguments (FUNC_MAX_ARGS); 1,600 columns need two levels. */
const MAX_ARGS = 100;

export function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += MAX_ARGS) out.push(items.slice(i, i + MAX_ARGS));
  return out;
}

/** Types whose values are text already (text, varchar): read as they are, with no output function call. */
const TEXT_TYPES = new Set([25, 1043]);
/**
 * Scalar types whose cast to text is the I/O conversion (pg_cast has no cast of theirs to
 * text), so `::text` prints exactly what their output function prints; concat() looks the
 * output function up again for every value, which cost more than the rest of the framing.
 * int2, int4, int8, oid, float4, float8, numeric, uuid, date, time, timetz, timestamp,
 * timestamptz, interval, json, jsonb.
 */
const CAST_TYPES = new Set([21, 23, 20, 26, 700, 701, 1700, 2950, 1082, 1083, 1266, 1114, 1184, 1186, 114, 3802]);

/** `typeOids`, parallel to `columns` when known, lets text columns skip a conversion. */
export function framedHashSql(columns: readonly string[], utf8Server: boolean, typeOids: readonly number[] = []): FramedHashSql {
  // IS DISTINCT FROM NULL, because a composite value with a NULL field IS NULL (and is not NULL).
  // concat() prints each value with its type's output function, as the wire's text format does
  // (a ::text cast would not for every type: booleans, char(n), inet).
  const values = columns.map((c, i) => {
    const oid = typeOids[i] ?? 0;
    if (TEXT_TYPES.has(oid)) return `t.${quoteIdent(c)} AS v${i}`;
    if (CAST_TYPES.has(oid)) return `t.${quoteIdent(c)}::pg_catalog.text AS v${i}`;
    return `CASE WHEN t.${quoteIdent(c)} IS DISTINCT FROM NULL THEN pg_catalog.concat(t.${quoteIdent(c)}) END AS v${i}`;
  });
  // A NULL column frames as NULL (see bulkStringSql), which has no field: ''.
  const frames = columns.map((c, i) => `COALESCE(${bulkStringSql(`v.v${i}`, utf8Server, `$${Buffer.byteLength(c)}\r\n${c}\r\n`)}, '')`);
  const count = chunks(columns.map((_, i) => `v.v${i}`)).map((c) => `pg_catalog.num_nonnulls(${c.join(', ')})`);
  return { values: values.join(', '), count: count.join(' + '), framed: concatTextSql(frames) };
}

/**
 * SQL for the RESP bulk string of a text expression, as bulkString() frames it: its length in
 * bytes of the UTF-8 the connection receives (see framedHashSql); after `head`, text to put
 * before it. NULL for a NULL value. The expression appears twice: make it a column, not a
 * computation.
 */
export function bulkStringSql(value: string, utf8Server: boolean, head = ''): string {
  const bytes = utf8Server ? `pg_catalog.octet_length(${value})` : `pg_catalog.octet_length(pg_catalog.convert_to(${value}, 'UTF8'))`;
  return concatTextSql([quoteLiteral(`${head}$`), `${bytes}::pg_catalog.text`, CRLF, value, CRLF]);
}


/**
 * The write for a framed hash row: a row without fields has no key (Redis holds no empty
 * hash). In a SQL_ASCII database the text may not be UTF-8; decoding replaced such bytes and
 * the byte counts would no longer match what is sent: refuse rather than send Redis a
 * malformed command.
 */
export function framedHashWrite(key: string, fields: number, framed: string, utf8Server: boolean, display: string): KeyWrite {
  if (fields === 0) return { key, delete: true };
  if (!utf8Server && framed.includes('\uFFFD')) {
    throw new Error(`a row of ${display} (key ${key}) holds text that is not valid UTF-8; it cannot be mirrored`);
  }
  return { key, fields, encoded: framed };
}
