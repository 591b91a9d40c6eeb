import type { Command } from 'commander';
import { checkPool, createPool } from '../db/connect.js';
import { describePgError } from '../db/errors.js';
import { parseTableName } from '../config/table-name.js';
import { connectRedis } from '../redis/connect.js';
import { syncTables } from '../sync/sync.js';
import { createProgress } from '../sync/progress.js';
import { configFrom, globals, loggerFrom, positiveInt } from './options.js';

export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('copy every existing row of the mirrored tables into Redis (safe while the daemon runs)')
    .option('--quiet', 'no progress bar or progress logs')
    .option('--page-size <n>', 'rows read per page', positiveInt)
    .option('--only-new', 'only tables never copied before (or whose options changed)')
    .action(async (options: { quiet?: boolean; pageSize?: number; onlyNew?: boolean }, command: Command) => {
      const config = configFrom(command);
      const logger = loggerFrom(command);
      const tables = (globals(command).table ?? []).map(parseTableName);
      const pool = createPool(config.databaseUrl, { max: 1 });
      const progress = createProgress(logger, { quiet: options.quiet === true });
      try {
        await checkPool(pool, config.databaseUrl);
        const redis = await connectRedis(config.redisUrl);
        try {
          const results = await syncTables(pool, redis, {
            schema: config.schema,
            tables,
            onlyNeverCopied: options.onlyNew === true,
            pageSize: options.pageSize ?? 5000,
            onProgress: (p) => progress.update(p),
          });
          progress.stop();
          if (options.quiet !== true) {
            for (const r of results) {
              console.log(`copied ${r.table}: ${r.rows} rows in ${(r.ms / 1000).toFixed(2)} s (${Math.round(r.rows / Math.max(r.ms / 1000, 0.001))} rows/s)`);
            }
            if (results.length === 0) console.log('nothing to copy');
          }
        } finally {
          redis.disconnect();
        }
      } catch (error) {
        progress.stop();
        throw describePgError(error, config.databaseUrl);
      } finally {
        await pool.end();
      }
    });
}
