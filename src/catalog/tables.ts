import { sql } from 'kysely';
import type { Db } from '../db/kysely.js';
import { formatTableName, type TableName } from '../config/table-name.js';

export interface ColumnInfo {
  name: string;
  /** format_type() of the type without modifier: a name PostgreSQL parses back, quoted where needed. */
  type: string;
  typeOid: number;
  /** pg_type.typcategory of the column's type (of the base type for a domain). */
  category: string;
  notNull: boolean;
}

export interface TableInfo extends TableName {
  oid: number;
  kind: 'table' | 'partitioned table' | 'other';
  /** The partitioned table at the top of the tree this table is a partition of, or null. */
  partitionOf: TableName | null;
  columns: ColumnInfo[];
  primaryKey: string[] | null;
  /** Column sets (in index order) of unique indexes without predicate or expressions. */
  uniqueKeys: string[][];
}

interface RelationRow {
  oid: string;
  relkind: string;
}

export async function findTable(db: Db, table: TableName): Promise<TableInfo | null> {
  const rel = await sql<RelationRow>`
    SELECT c.oid, c.relkind
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ${table.schema} AND c.relname = ${table.name}`.execute(db);
  const row = rel.rows[0];
  if (row === undefined) return null;
  return describeTable(db, Number(row.oid));
}

/** The table with this OID as it is now, or null when it was dropped. */
export async function describeTable(db: Db, oid: number): Promise<TableInfo | null> {
  const rel = await sql<RelationRow & { schema: string; name: string; root_schema: string | null; root_name: string | null }>`
    SELECT c.oid, c.relkind, n.nspname AS schema, c.relname AS name, rn.nspname AS root_schema, r.relname AS root_name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_class r ON c.relispartition AND r.oid = pg_catalog.pg_partition_root(c.oid)
    LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
    WHERE c.oid = ${oid}`.execute(db);
  const row = rel.rows[0];
  if (row === undefined) return null;
  const table: TableName = { schema: row.schema, name: row.name };
  const columns = await sql<{ name: string; type: string; type_oid: string; category: string; not_null: boolean | string }>`
    SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, NULL) AS type,
           a.atttypid AS type_oid, coalesce(bt.typcategory, t.typcategory) AS category, a.attnotnull AS not_null
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
    WHERE a.attrelid = ${oid} AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum`.execute(db);
  const indexes = await sql<{ primary: boolean | string; columns: string }>`
    SELECT i.indisprimary AS primary,
           array_to_json(ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 ORDER BY k.ord))::text AS columns
    FROM pg_catalog.pg_index i
    WHERE i.indrelid = ${oid} AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
    ORDER BY i.indisprimary DESC, i.indexrelid`.execute(db);
  const primary = indexes.rows.find((i) => isTrue(i.primary));
  return {
    ...table,
    oid,
    kind: row.relkind === 'r' ? 'table' : row.relkind === 'p' ? 'partitioned table' : 'other',
    partitionOf: row.root_schema === null || row.root_name === null ? null : { schema: row.root_schema, name: row.root_name },
    columns: columns.rows.map((c) => ({
      name: c.name,
      type: c.type,
      typeOid: Number(c.type_oid),
      category: c.category,
      notNull: isTrue(c.not_null),
    })),
    primaryKey: primary === undefined ? null : (JSON.parse(primary.columns) as string[]),
    uniqueKeys: indexes.rows.map((i) => JSON.parse(i.columns) as string[]),
  };
}

/** Tables whose name matches when case is ignored: the likely meaning of a mistyped name. */
export async function similarTables(db: Db, table: TableName): Promise<string[]> {
  const rows = await sql<{ schema: string; name: string }>`
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND lower(c.relname) = lower(${table.name})
      AND (lower(n.nspname) = lower(${table.schema}) OR ${table.schema} = 'public')
    ORDER BY 1, 2 LIMIT 5`.execute(db);
  return rows.rows.map((r) => formatTableName(r));
}

function isTrue(value: boolean | string): boolean {
  return value === true || value === 't' || value === 'true';
}
