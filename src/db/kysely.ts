import { Kysely, PostgresDialect } from 'kysely';
import type pg from 'pg';

/**
 * The tool queries catalogs and tables whose names come from configuration, so it uses
 * kysely's `sql` template (with `sql.id` / `sql.table` for identifiers and bound values for
 * everything else) rather than a compile-time schema.
 */
export type Db = Kysely<Record<string, never>>;

export function createDb(pool: pg.Pool): Db {
  return new Kysely<Record<string, never>>({ dialect: new PostgresDialect({ pool }) });
}
