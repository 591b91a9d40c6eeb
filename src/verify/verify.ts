import type pg from 'pg';
import type { Redis } from 'ioredis';
import { createDb } from '../db/kysely.js';
import { formatTableName, type TableName } from '../config/table-name.js';
import { UserError } from '../errors.js';
import { loadRegistry } from '../daemon/registry.js';
import { verifyTable, type TableVerifyReport, type VerifyOptions } from './compare.js';

export interface VerifyMirrorOptions extends VerifyOptions {
  schema: string;
  /** Only these tables; all mirrored tables when absent or empty. */
  tables?: TableName[];
}

export async function verifyMirror(pool: pg.Pool, redis: Redis, options: VerifyMirrorOptions): Promise<TableVerifyReport[]> {
  const registry = await loadRegistry(createDb(pool), options.schema);
  let plans = [...registry.plans.values()];
  if (options.tables !== undefined && options.tables.length > 0) {
    plans = options.tables.map((t) => {
      const plan = plans.find((p) => p.schema === t.schema && p.name === t.name);
      if (plan === undefined) throw new UserError(`table ${formatTableName(t)} is not mirrored; install it first or drop it from --table`);
      return plan;
    });
  }
  const client = await pool.connect();
  try {
    const reports: TableVerifyReport[] = [];
    for (const plan of plans) reports.push(await verifyTable(client, redis, plan, options));
    return reports;
  } finally {
    client.release();
  }
}

export function isClean(reports: readonly TableVerifyReport[]): boolean {
  return reports.every((r) => r.missing === 0 && r.stale === 0 && r.extra === 0);
}
