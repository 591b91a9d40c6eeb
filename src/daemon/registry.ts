import { sql } from 'kysely';
import type { Db } from '../db/kysely.js';
import { describeTable } from '../catalog/tables.js';
import { UserError } from '../errors.js';
import type { StoredSpec } from '../install/spec.js';
import { buildTablePlan, type TablePlan } from './table-plan.js';
import { quoteIdent } from '../sql/quote.js';
import { DEFAULT_GROUP } from '../config/load.js';

export interface Registry {
  plans: Map<number, TablePlan>;
  /** Tables `sync` has never copied (or must copy again because their options changed). */
  neverCopied: Set<number>;
  /** Registered tables that could not be planned (dropped, altered), with the reason. */
  problems: string[];
}

let planCounter = 0;

/** Reads the mirrored tables from the install's registry and the catalog as they are now. */
/** `group`: only the tables of that daemon group (all tables when absent). */
export async function loadRegistry(db: Db, toolSchema: string, group?: string): Promise<Registry> {
  const exists = await sql<{ oid: string | null }>`SELECT to_regclass(${`${quoteIdent(toolSchema)}.tables`})::oid AS oid`.execute(db);
  if (exists.rows[0]?.oid === null || exists.rows[0] === undefined) {
    throw new UserError(`pg-redis-mirror is not installed in this database (no schema "${toolSchema}"); run \`pg-redis-mirror install\` first, or pass the --schema it was installed with`);
  }
  const rows = await sql<{ oid: string; schema_name: string; table_name: string; spec: string; synced_at: string | null }>`
    SELECT rel::oid AS oid, schema_name, table_name, spec::text AS spec, synced_at FROM ${sql.id(toolSchema, 'tables')}`.execute(db);
  const plans = new Map<number, TablePlan>();
  const neverCopied = new Set<number>();
  const problems: string[] = [];
  for (const row of rows.rows) {
    const info = await describeTable(db, Number(row.oid));
    if (info === null) {
      problems.push(`${row.schema_name}.${row.table_name} was dropped; run install to update the registry`);
      continue;
    }
    const spec = JSON.parse(row.spec) as StoredSpec;
    if (group !== undefined && (spec.group ?? DEFAULT_GROUP) !== group) continue;
    try {
      plans.set(info.oid, buildTablePlan(info, spec, ++planCounter));
      if (row.synced_at === null) neverCopied.add(info.oid);
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
    }
  }
  return { plans, neverCopied, problems };
}
