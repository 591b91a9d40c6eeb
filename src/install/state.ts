import { sql } from 'kysely';
import type { Db } from '../db/kysely.js';
import type { StoredSpec } from './spec.js';
import { triggerNames } from './names.js';
import { quoteIdent } from '../sql/quote.js';

export interface InstalledTable {
  /** OID the registry holds; the table may have been dropped since. */
  oid: number;
  schema: string;
  name: string;
  spec: StoredSpec;
  specHash: string;
  /** Where the table is now (it may have been renamed); null when it was dropped. */
  current: { schema: string; name: string } | null;
  tableExists: boolean;
  /** Our triggers present on the table, and how many of those are enabled. */
  triggersPresent: number;
  triggersEnabled: number;
  /**
   * Partitions (of a partitioned table) without all of our triggers enabled: created or
   * attached after the install, so statements made straight to them are not captured.
   */
  partitionsUncaptured: string[];
  /** Our triggers of this table left on tables that are no longer its partitions (detached). */
  strayTriggers: number;
  /** The table at the top of the partition tree this table was attached to since, or null. */
  attachedTo: string | null;
  functionExists: boolean;
}

export interface InstallState {
  schemaExists: boolean;
  version: string | null;
  /** meta 'install_id': names the daemon's state hash in Redis (null before schema version 3). */
  installId: string | null;
  tables: InstalledTable[];
}

export const TRIGGERS_PER_TABLE = 5;

export async function readInstallState(db: Db, toolSchema: string, functionName: (schema: string, table: string) => string): Promise<InstallState> {
  const schema = await sql<{ has_registry: string | null; has_meta: string | null }>`
    SELECT to_regclass(${`${quoteIdent(toolSchema)}.tables`})::oid AS has_registry,
           to_regclass(${`${quoteIdent(toolSchema)}.meta`})::oid AS has_meta
    FROM pg_catalog.pg_namespace WHERE nspname = ${toolSchema}`.execute(db);
  const row = schema.rows[0];
  if (row === undefined) return { schemaExists: false, version: null, installId: null, tables: [] };
  let version: string | null = null;
  let installId: string | null = null;
  if (row.has_meta !== null) {
    const meta = await sql<{ key: string; value: string }>`SELECT key, value FROM ${sql.id(toolSchema, 'meta')} WHERE key IN ('version', 'install_id')`.execute(db);
    version = meta.rows.find((m) => m.key === 'version')?.value ?? null;
    installId = meta.rows.find((m) => m.key === 'install_id')?.value ?? null;
  }
  if (row.has_registry === null) return { schemaExists: true, version, installId, tables: [] };
  const names = Object.values(triggerNames(toolSchema));
  const rows = await sql<{
    oid: string;
    schema_name: string;
    table_name: string;
    spec: string;
    spec_hash: string;
    table_exists: string;
    current_schema: string | null;
    current_name: string | null;
    present: string;
    enabled: string;
    uncaptured: string;
    attached_to: string | null;
  }>`
    SELECT r.rel::oid AS oid, r.schema_name, r.table_name, r.spec::text AS spec, r.spec_hash,
           EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = r.rel) AS table_exists,
           (SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = r.rel) AS current_schema,
           (SELECT c.relname FROM pg_catalog.pg_class c WHERE c.oid = r.rel) AS current_name,
           (SELECT count(*) FROM pg_catalog.pg_trigger t WHERE t.tgrelid = r.rel AND t.tgname = ANY(${names}::text[])) AS present,
           (SELECT count(*) FROM pg_catalog.pg_trigger t WHERE t.tgrelid = r.rel AND t.tgname = ANY(${names}::text[]) AND t.tgenabled IN ('O', 'A')) AS enabled,
           -- A leaf has all five (its TRUNCATE one BEFORE), a partitioned partition all but TRUNCATE.
           pg_catalog.array_to_json(ARRAY(SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                 FROM pg_catalog.pg_partition_tree(r.rel) pt
                 JOIN pg_catalog.pg_class c ON c.oid = pt.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE pt.level > 0 AND c.relkind IN ('r', 'p')
                   AND (SELECT count(*) FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = ANY(${names}::text[]) AND t.tgenabled IN ('O', 'A'))
                       < CASE c.relkind WHEN 'r' THEN ${TRIGGERS_PER_TABLE}::int ELSE ${TRIGGERS_PER_TABLE - 1}::int END
                 ORDER BY n.nspname, c.relname))::text AS uncaptured,
           (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = pg_catalog.pg_partition_root(r.rel) AND c.oid <> r.rel) AS attached_to
    FROM ${sql.id(toolSchema, 'tables')} r
    ORDER BY r.schema_name, r.table_name`.execute(db);
  const functions = await sql<{ proname: string }>`
    SELECT p.proname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ${toolSchema}`.execute(db);
  const existing = new Set(functions.rows.map((f) => f.proname));
  // Triggers calling one of our functions on a table that is no mirrored table nor a partition of one.
  const strays = await sql<{ proname: string; n: string }>`
    SELECT p.proname, count(*) AS n
    FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ${toolSchema} AND t.tgparentid = 0
      AND t.tgrelid NOT IN (SELECT pt.relid FROM ${sql.id(toolSchema, 'tables')} r, pg_catalog.pg_partition_tree(r.rel) pt)
      AND t.tgrelid NOT IN (SELECT r.rel FROM ${sql.id(toolSchema, 'tables')} r)
    GROUP BY p.proname`.execute(db);
  const strayCount = new Map(strays.rows.map((r) => [r.proname, Number(r.n)]));
  return {
    schemaExists: true,
    version,
    installId,
    tables: rows.rows.map((r) => ({
      oid: Number(r.oid),
      schema: r.schema_name,
      name: r.table_name,
      spec: JSON.parse(r.spec) as StoredSpec,
      specHash: r.spec_hash,
      tableExists: r.table_exists === 't',
      current: r.current_schema !== null && r.current_name !== null ? { schema: r.current_schema, name: r.current_name } : null,
      triggersPresent: Number(r.present),
      triggersEnabled: Number(r.enabled),
      partitionsUncaptured: JSON.parse(r.uncaptured) as string[],
      attachedTo: r.attached_to,
      strayTriggers: strayCount.get(functionName(r.schema_name, r.table_name)) ?? 0,
      functionExists: existing.has(functionName(r.schema_name, r.table_name)),
    })),
  };
}
