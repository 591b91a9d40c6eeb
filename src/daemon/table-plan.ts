import type { ValueFormat } from '../config/load.js';
import { formatTableName, type TableName } from '../config/table-name.js';
import type { ColumnInfo, TableInfo } from '../catalog/tables.js';
import type { StoredSpec } from '../install/spec.js';
import { changeStreamKey, keyLayout, type KeyLayout } from '../redis/keys.js';
import type { ChangeEvents, KeyWrite } from '../redis/replace.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';

/**
 * Everything needed to turn "these keys changed" into Redis writes for one table: the key
 * layout and one prepared read query that names only the mirrored columns (an excluded
 * column is never read).
 */
export interface TablePlan {
  oid: number;
  display: string;
  schema: string;
  name: string;
  format: ValueFormat;
  keyColumns: ColumnInfo[];
  columns: string[];
  /** pg_type oid of each of `columns`. */
  columnTypeOids: number[];
  /** The row filter (a PostgreSQL-printed boolean expression), or null: every row is mirrored. */
  filter: string | null;
  /**
   * The FROM item `... AS t` that rows are read from: the table, or with a filter only its
   * matching rows, so that everywhere a key is read (daemon, copy, verify) a row that does
   * not match reads as not found, and its key is deleted or reported as extra.
   */
  source: string;
  layout: KeyLayout;
  /** The table's key prefix (its own or the global one). */
  prefix: string;
  /** Seconds each written key lives (the `ttl` option), or null. */
  ttl: number | null;
  /** Where the daemon announces applied changes (`stream`, `publish`), or null. */
  events: ChangeEvents | null;
  /** $1..$n: one text[] per key column. Row: canonical key texts..., found, values... */
  readSql: string;
  /** Prepared-statement name, unique per plan. */
  readName: string;
  /** Keyset page in key order, same row shape as readSql: first page, and $1..$n = last key, $n+1 = limit. */
  firstPageSql: string;
  nextPageSql: string;
}

/** jsonb_build_object takes at most 100 arguments. */
const JSON_PAIRS_PER_CALL = 50;

export function buildTablePlan(info: TableInfo, spec: StoredSpec, planId: number): TablePlan {
  const byName = new Map(info.columns.map((c) => [c.name, c]));
  const keyColumns = spec.keyColumns.map((name) => {
    const column = byName.get(name);
    if (column === undefined) throw new Error(`key column "${name}" of ${formatTableName(info)} no longer exists; run install again`);
    return column;
  });
  const columns =
    spec.columns === null
      ? info.columns.map((c) => c.name).filter((c) => !spec.exclude.includes(c))
      : spec.columns.filter((c) => byName.has(c));
  const filter = spec.filter ?? null;
  for (const column of spec.filterColumns ?? []) {
    if (!byName.has(column)) throw new Error(`the filter of ${formatTableName(info)} reads column "${column}", which no longer exists; change the filter and run install again`);
  }
  const source = tableSource(info, keyColumns, columns, filter);
  const keyRefs = keyColumns.map((_, i) => `k.c${i}`);
  const keyOutputs = keyColumns.map((c, i) => `${keyRefs[i]}::${c.type}::text`);
  const found = `t.${quoteIdent(keyColumns[0]!.name)} IS NOT NULL`;
  const values =
    spec.format === 'json'
      ? [jsonExpression(columns)]
      : columns.map((c) => `t.${quoteIdent(c)}`);
  const join = keyColumns.map((c, i) => `t.${quoteIdent(c.name)} = ${keyRefs[i]}::${c.type}`).join(' AND ');
  const readSql =
    `SELECT ${[...keyOutputs, found, ...values].join(', ')} ` +
    `FROM unnest(${keyColumns.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS k(${keyRefs.map((_, i) => `c${i}`).join(', ')}) ` +
    `LEFT JOIN ${source} ON ${join}`;
  const keyCols = keyColumns.map((c) => `t.${quoteIdent(c.name)}`);
  const pageHead =
    `SELECT ${[...keyCols.map((c) => `${c}::text`), 'true', ...values].join(', ')} ` + `FROM ${source}`;
  const order = `ORDER BY ${keyCols.join(', ')}`;
  const after = `ROW(${keyCols.join(', ')}) > ROW(${keyColumns.map((c, i) => `$${i + 1}::${c.type}`).join(', ')})`;
  return {
    oid: info.oid,
    display: formatTableName(info),
    schema: info.schema,
    name: info.name,
    format: spec.format,
    keyColumns,
    columns,
    columnTypeOids: columns.map((c) => byName.get(c)!.typeOid),
    filter,
    source,
    layout: keyLayout({ prefix: spec.prefix, schema: info.schema, name: info.name, keyColumns: spec.keyColumns, keyTemplate: spec.keyTemplate }),
    prefix: spec.prefix,
    ttl: spec.ttl ?? null,
    events:
      spec.stream === undefined && spec.publish === undefined
        ? null
        : {
            table: formatTableName(info),
            stream: spec.stream === undefined ? null : { key: changeStreamKey(spec.prefix, info.schema, info.name), maxLen: spec.stream.maxLen },
            channel: spec.publish ?? null,
          },
    readSql,
    readName: `prm_read_${planId}`,
    firstPageSql: `${pageHead} ${order} LIMIT $1`,
    nextPageSql: `${pageHead} WHERE ${after} ${order} LIMIT $${keyColumns.length + 1}`,
  };
}

/**
 * The table, or its matching rows as a subquery. The filter stands alone in the subquery's
 * WHERE: its column names (printed unqualified by PostgreSQL) can only resolve to the table's
 * columns there, not to a column of the key list it is joined with. The subquery names only
 * key and mirrored columns (a column-level grant allows no `*`); PostgreSQL flattens it, so
 * key lookups and key order still use the table's index.
 */
function tableSource(info: TableName, keyColumns: readonly ColumnInfo[], columns: readonly string[], filter: string | null): string {
  const table = quoteQualified(info.schema, info.name);
  if (filter === null) return `${table} AS t`;
  const read = [...new Set([...keyColumns.map((c) => c.name), ...columns])].map(quoteIdent);
  return `(SELECT ${read.join(', ')} FROM ${table} WHERE (${filter})) AS t`;
}

export function jsonExpression(columns: readonly string[]): string {
  const calls: string[] = [];
  for (let i = 0; i < columns.length; i += JSON_PAIRS_PER_CALL) {
    const pairs = columns.slice(i, i + JSON_PAIRS_PER_CALL).map((c) => `${quoteLiteral(c)}, t.${quoteIdent(c)}`);
    calls.push(`jsonb_build_object(${pairs.join(', ')})`);
  }
  return `(${calls.join(' || ')})::text`;
}

/**
 * Turns a row read by `readSql` (array mode) into the write for its key: the row's current
 * value, or a delete when it no longer exists.
 */
export function rowToWrite(plan: TablePlan, row: readonly (string | null)[]): KeyWrite {
  const n = plan.keyColumns.length;
  const key = plan.layout.build(row.slice(0, n) as string[]);
  if (row[n] !== 't') return { key, delete: true };
  if (plan.format === 'json') return { key, json: row[n + 1] as string };
  const hash: string[] = [];
  for (let i = 0; i < plan.columns.length; i++) {
    const value = row[n + 1 + i];
    if (value !== null && value !== undefined) hash.push(plan.columns[i]!, value);
  }
  // Redis cannot hold an empty hash: a row whose mirrored columns are all NULL has no key.
  return hash.length === 0 ? { key, delete: true } : { key, hash };
}
