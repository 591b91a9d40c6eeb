import type { Command } from 'commander';
import { parseTableName } from '../config/table-name.js';
import { syncTables } from '../sync/sync.js';
import { createProgress } from '../sync/progress.js';
import { configFrom, globals, loggerFrom, positiveInt } from './options.js';
import { withServers } from './servers.js';

export function registerSync(program: Command): void {
  program
    .command('sync')
    .description('copy every existing row of the mirrored tables into Redis (safe while the daemon runs)')
    .option('--quiet', 'no progress bar or progress logs')
    .option('--page-size <n>', 'rows read per page', positiveInt)
    .option('--only-new', 'only tables never copied before (or whose options changed)')
    .action(async (options: { quiet?: boolean; pageSize?: number; onlyNew?: boolean }, command: Command) => {
      const config = configFrom(command);
      const quiet = options.quiet === true;
      const tables = (globals(command).table ?? []).map(parseTableName);
      const progress = createProgress(loggerFrom(command), { quiet });
      try {
        const results = await withServers(config, 'the copy', (pool, redis) =>
          syncTables(pool, redis, {
            schema: config.schema,
            tables,
            onlyNeverCopied: options.onlyNew === true,
            pageSize: options.pageSize ?? 5000,
            onProgress: (p) => progress.update(p),
          }),
        );
        progress.stop();
        if (quiet) return;
        for (const r of results) {
          console.log(`copied ${r.table}: ${r.rows} rows in ${(r.ms / 1000).toFixed(2)} s (${Math.round(r.rows / Math.max(r.ms / 1000, 0.001))} rows/s)`);
        }
        if (results.length === 0) console.log('nothing to copy');
      } finally {
        progress.stop();
      }
    });
}
