import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../db/kysely.js';
import type { TableName } from '../config/table-name.js';

export interface ListedColumn {
  name: string;
  notNull: boolean;
}

/** A table `init` can offer: what a starter config needs to know about it. */
export interface ListedTable extends TableName {
  oid: number;
  kind: 'table' | 'partitioned table';
  /** In column order. */
  columns: ListedColumn[];
  primaryKey: string[] | null;
  /** Column sets (in index order) of valid unique indexes without predicate or expressions, the primary key first. */
  uniqueKeys: string[][];
}

export interface ListTablesOptions {
  /** The tool's own schema (config `schema`): never listed. */
  toolSchema: string;
  /** Only these schemas (exact names); all user schemas when absent or empty. */
  schemas?: readonly string[];
}

const columnsJson = z.array(z.strictObject({ name: z.string(), notNull: z.boolean() }));
const indexesJson = z.array(z.strictObject({ primary: z.boolean(), columns: z.array(z.string()) }));

interface ListRow {
  oid: string;
  schema: string;
  name: string;
  relkind: string;
  columns: string;
  indexes: string;
}

/**
 * Ordinary and partitioned tables in every user schema: not the system schemas
 * (pg_catalog, information_schema, pg_toast*, other sessions' pg_temp*), not the tool's own
 * schema, not partitions (their partitioned table stands for them), not temporary tables and
 * not tables that belong to an extension. Ordered by schema and name (byte order).
 */
export async function listTables(db: Db, options: ListTablesOptions): Promise<ListedTable[]> {
  const schemas = options.schemas === undefined || options.schemas.length === 0 ? null : [...options.schemas];
  const result = await sql<ListRow>`
    SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind,
      array_to_json(ARRAY(
        SELECT json_build_object('name', a.attname, 'notNull', a.attnotnull)
        FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum))::text AS columns,
      array_to_json(ARRAY(
        SELECT json_build_object('primary', i.indisprimary, 'columns', array_to_json(ARRAY(
          SELECT a.attname::text
          FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          ORDER BY k.ord)))
        FROM pg_catalog.pg_index i
        WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
        ORDER BY i.indisprimary DESC, i.indexrelid))::text AS indexes
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
      AND n.nspname <> ${options.toolSchema}
      AND (${schemas}::text[] IS NULL OR n.nspname = ANY (${schemas}::text[]))
      AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`.execute(db);
  return result.rows.map((row) => {
    const indexes = indexesJson.parse(JSON.parse(row.indexes) as unknown);
    const primary = indexes.find((i) => i.primary);
    return {
      schema: row.schema,
      name: row.name,
      oid: Number(row.oid),
      kind: row.relkind === 'p' ? 'partitioned table' : 'table',
      columns: columnsJson.parse(JSON.parse(row.columns) as unknown),
      primaryKey: primary === undefined ? null : primary.columns,
      uniqueKeys: indexes.map((i) => i.columns),
    };
  });
}

/** Which of these schema names do not exist (names are exact, case-sensitive). */
export async function missingSchemas(db: Db, names: readonly string[]): Promise<string[]> {
  if (names.length === 0) return [];
  const result = await sql<{ name: string }>`
    SELECT nspname AS name FROM pg_catalog.pg_namespace WHERE nspname = ANY (${[...names]}::text[])`.execute(db);
  const found = new Set(result.rows.map((r) => r.name));
  return names.filter((n) => !found.has(n));
}
