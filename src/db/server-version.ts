import { sql } from 'kysely';
import type { Db } from './kysely.js';
import { UserError } from '../errors.js';

/**
 * The oldest PostgreSQL the install script runs on: CREATE OR REPLACE TRIGGER (which lets an
 * install update a trigger without a moment in which the table has none) and column
 * compression are PostgreSQL 14's. On 13 the script would stop at a syntax error.
 */
export const MIN_POSTGRES_VERSION_NUM = 140000;

/** Why this server cannot be used, or undefined when it can (server_version_num, server_version). */
export function unsupportedPostgres(versionNum: number, version: string, where: string): string | undefined {
  if (!Number.isInteger(versionNum) || versionNum >= MIN_POSTGRES_VERSION_NUM) return undefined;
  return `PostgreSQL ${version} at ${where} is too old: pg-redis-mirror needs PostgreSQL 14 or later (it installs its triggers with CREATE OR REPLACE TRIGGER); upgrade the server`;
}

/** `where`: the server, as describeDatabaseUrl prints it. */
export async function checkPostgresVersion(db: Db, where: string): Promise<void> {
  const result = await sql<{ num: string; version: string }>`
    SELECT pg_catalog.current_setting('server_version_num') AS num, pg_catalog.current_setting('server_version') AS version`.execute(db);
  const row = result.rows[0];
  const problem = row === undefined ? undefined : unsupportedPostgres(Number(row.num), row.version, where);
  if (problem !== undefined) throw new UserError(problem);
}
