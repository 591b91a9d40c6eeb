import { sql } from 'kysely';
import type { Config } from '../config/load.js';
import { formatTableName } from '../config/table-name.js';
import type { Db } from '../db/kysely.js';
import { findTable } from '../catalog/tables.js';
import { UserError } from '../errors.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { resolveTableSpec } from './spec.js';

/**
 * The GRANT statements that let `role` run the daemon (and sync, verify, status) and nothing
 * more: read and delete the journal, read the registry, mark copies done, take part in leader
 * election through `meta`, and read only the mirrored columns of the configured tables (and
 * the columns their filters read).
 * Every name is quoted: config values and the role never reach SQL as written.
 */
export async function renderDaemonGrants(db: Db, config: Config, role: string): Promise<string> {
  if (role === '') throw new UserError('--role needs the name of the role the daemon logs in as');
  if (config.tables.length === 0) {
    throw new UserError('no tables configured: pass --table schema.name or list "tables" in pg-redis-mirror.json (see `pg-redis-mirror init`)');
  }
  const r = quoteIdent(role);
  const tool = quoteIdent(config.schema);
  const database = await sql<{ name: string }>`SELECT pg_catalog.current_database() AS name`.execute(db);
  const lines = [
    `-- pg-redis-mirror: what role ${role} needs to run \`listen\`, \`sync\`, \`verify\` and \`status\`. Run after \`install\`.`,
    `GRANT CONNECT ON DATABASE ${quoteIdent(database.rows[0]!.name)} TO ${r};`,
    `GRANT USAGE ON SCHEMA ${tool} TO ${r};`,
    `GRANT SELECT, DELETE ON ${tool}.journal TO ${r};`,
    `GRANT SELECT, UPDATE (synced_at) ON ${tool}.tables TO ${r};`,
    `GRANT SELECT, UPDATE ON ${tool}.meta TO ${r};`,
  ];
  const schemas = new Set<string>();
  const tableLines: string[] = [];
  for (const table of config.tables) {
    const spec = await resolveTableSpec(db, table);
    const info = await findTable(db, table);
    if (info === null) throw new UserError(`table ${formatTableName(table)} does not exist`);
    schemas.add(spec.schema);
    const target = quoteQualified(spec.schema, spec.name);
    if (spec.stored.columns === null && spec.stored.exclude.length === 0) {
      // Every column is mirrored, including columns added later: the whole table.
      tableLines.push(`GRANT SELECT ON ${target} TO ${r};`);
      continue;
    }
    const mirrored = spec.stored.columns ?? info.columns.map((c) => c.name).filter((c) => !spec.stored.exclude.includes(c));
    // Key columns are read to find the rows, and a filter's columns to choose them, mirrored
    // or not (the daemon evaluates the filter in its own session); other excluded columns are
    // never granted.
    const columns = [...new Set([...spec.stored.keyColumns, ...mirrored, ...(spec.stored.filterColumns ?? [])])];
    tableLines.push(`GRANT SELECT (${columns.map(quoteIdent).join(', ')}) ON ${target} TO ${r};`);
  }
  for (const schema of schemas) lines.push(`GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${r};`);
  lines.push(...tableLines);
  return `${lines.join('\n')}\n`;
}
