import type pg from 'pg';
import type { RedisClient } from '../redis/cluster.js';
import { createDb } from '../db/kysely.js';
import type { TableName } from '../config/table-name.js';
import { selectPlans } from '../sync/sync.js';
import { loadRegistry } from '../daemon/registry.js';
import { verifyTable, type TableVerifyReport, type VerifyOptions } from './compare.js';

export interface VerifyMirrorOptions extends Omit<VerifyOptions, 'repair'> {
  schema: string;
  repair?: boolean;
  /** Only these tables; all mirrored tables when absent or empty. */
  tables?: TableName[];
}

export async function verifyMirror(pool: pg.Pool, redis: RedisClient, options: VerifyMirrorOptions): Promise<TableVerifyReport[]> {
  const registry = await loadRegistry(createDb(pool), options.schema);
  const plans = selectPlans(registry.plans.values(), options.tables);
  const client = await pool.connect();
  try {
    const reports: TableVerifyReport[] = [];
    const { repair, ...rest } = options;
    for (const plan of plans) {
      reports.push(await verifyTable(client, redis, plan, { ...rest, ...(repair === true ? { repair: { schema: options.schema } } : {}) }));
    }
    return reports;
  } finally {
    client.release();
  }
}

export function isClean(reports: readonly TableVerifyReport[]): boolean {
  return reports.every((r) => r.missing === 0 && r.stale === 0 && r.extra === 0);
}
