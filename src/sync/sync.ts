import type pg from 'pg';
import type { RedisClient } from '../redis/cluster.js';
import { createDb } from '../db/kysely.js';
import { formatTableName, type TableName } from '../config/table-name.js';
import { UserError } from '../errors.js';
import { loadRegistry } from '../daemon/registry.js';
import type { TablePlan } from '../daemon/table-plan.js';
import { copyTable, type CopyProgress, type CopyResult } from './copy.js';

export interface SyncOptions {
  schema: string;
  /** Only these tables (all mirrored tables when absent or empty). */
  tables?: TableName[];
  /** Only tables that were never copied, or whose options changed since their last copy. */
  onlyNeverCopied?: boolean;
  pageSize?: number;
  onStart?: (tables: TablePlan[]) => void;
  onProgress?: (progress: CopyProgress) => void;
  shouldStop?: () => boolean;
}

/** Picks the registered tables a command should work on; an unknown --table is an error. */
export function selectPlans(plans: Iterable<TablePlan>, wanted: TableName[] | undefined): TablePlan[] {
  const all = [...plans];
  if (wanted === undefined || wanted.length === 0) return all;
  return wanted.map((t) => {
    const plan = all.find((p) => p.schema === t.schema && p.name === t.name);
    if (plan === undefined) throw new UserError(`table ${formatTableName(t)} is not mirrored; add it with \`pg-redis-mirror install --table ${formatTableName(t)}\``);
    return plan;
  });
}

/** Copies the chosen mirrored tables into Redis, one after the other. */
export async function syncTables(pool: pg.Pool, redis: RedisClient, options: SyncOptions): Promise<CopyResult[]> {
  const registry = await loadRegistry(createDb(pool), options.schema);
  let plans = selectPlans(registry.plans.values(), options.tables);
  if (options.onlyNeverCopied === true) plans = plans.filter((p) => registry.neverCopied.has(p.oid));
  options.onStart?.(plans);
  const client = await pool.connect();
  try {
    const results: CopyResult[] = [];
    for (const plan of plans) {
      results.push(
        await copyTable(client, redis, plan, {
          schema: options.schema,
          ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
          ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
          ...(options.shouldStop === undefined ? {} : { shouldStop: options.shouldStop }),
        }),
      );
    }
    return results;
  } finally {
    client.release();
  }
}
