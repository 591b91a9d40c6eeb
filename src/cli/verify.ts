import type { Command } from 'commander';
import { parseTableName } from '../config/table-name.js';
import { withServers } from './servers.js';
import { isClean, verifyMirror } from '../verify/verify.js';
import type { TableVerifyReport } from '../verify/compare.js';
import { globals, configFrom } from './options.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('compare PostgreSQL and Redis table by table: missing, stale and extra keys (exit 1 on drift)')
    .option('--repair', 'fix every difference found')
    .option('--json', 'print the report as JSON')
    .action(async (options: { repair?: boolean; json?: boolean }, command: Command) => {
      const config = configFrom(command);
      const tables = (globals(command).table ?? []).map(parseTableName);
      const reports = await withServers(config, 'verify', (pool, redis) =>
        verifyMirror(pool, redis, { schema: config.schema, tables, repair: options.repair === true }),
      );
      if (options.json === true) console.log(JSON.stringify({ clean: isClean(reports), tables: reports }, null, 2));
      else for (const line of summarize(reports)) console.log(line);
      // A repaired mirror is clean now; exit 1 only when drift is left.
      if (!isClean(reports) && options.repair !== true) process.exitCode = 1;
    });
}

export function summarize(reports: readonly TableVerifyReport[]): string[] {
  const lines: string[] = [];
  for (const r of reports) {
    const drift = r.missing + r.stale + r.extra;
    const verb = r.repaired && drift > 0 ? 'repaired' : drift > 0 ? 'DRIFT' : 'ok';
    // Keys of a TTL table expire by design: shown, but not drift (see TableVerifyReport).
    const expired = r.expired > 0 ? `, ${r.expired} expired (TTL)` : '';
    lines.push(`${verb.padEnd(8)} ${r.table}: ${r.rows} rows, ${r.keys} keys, ${r.missing} missing, ${r.stale} stale, ${r.extra} extra${expired}`);
    for (const kind of ['missing', 'stale', 'extra'] as const) {
      for (const key of r.samples[kind]) lines.push(`         ${kind}: ${key}`);
    }
  }
  return lines;
}
