import type { Command } from 'commander';
import { checkPool, createPool } from '../db/connect.js';
import { describeDatabaseUrl, describePgError } from '../db/errors.js';
import { parseTableName } from '../config/table-name.js';
import { readStatus, type StatusReport, type TableStatus } from '../status/status.js';
import { configFrom, globals } from './options.js';

/** Exit code when the status was read but something needs attention (a WARNING line each). */
export const STATUS_PROBLEM_EXIT_CODE = 2;

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      `show the install, mirrored tables and their triggers, journal backlog, connected daemons and Redis key counts (exit ${STATUS_PROBLEM_EXIT_CODE} when something needs attention)`,
    )
    .option('--json', 'print the report as JSON')
    .option('--no-keys', 'do not count each table\'s keys in Redis (a SCAN of the keyspace per table)')
    .action(async (options: { json?: boolean; keys: boolean }, command: Command) => {
      const config = configFrom(command);
      const tables = (globals(command).table ?? []).map(parseTableName);
      const pool = createPool(config.databaseUrl, { max: 1 });
      try {
        await checkPool(pool, config.databaseUrl);
        const report = await readStatus(pool, { schema: config.schema, redisUrl: config.redisUrl, tables, countKeys: options.keys });
        if (options.json === true) console.log(JSON.stringify({ ok: report.problems.length === 0, ...report }, null, 2));
        else for (const line of formatStatus(report, describeDatabaseUrl(config.databaseUrl))) console.log(line);
        if (report.problems.length > 0) process.exitCode = STATUS_PROBLEM_EXIT_CODE;
      } catch (error) {
        throw describePgError(error, config.databaseUrl);
      } finally {
        await pool.end();
      }
    });
}

/** The human report: one section per part, then one WARNING line per problem. */
export function formatStatus(report: StatusReport, database: string): string[] {
  const lines: string[] = [];
  const { install, backlog, daemon, redis } = report;
  lines.push(`pg-redis-mirror status: schema ${report.schema} in ${database}`);
  lines.push('');
  if (install.version === null) lines.push(`install   version unknown (incomplete install); run pg-redis-mirror install`);
  else if (install.newerThanTool) lines.push(`install   version ${install.version}, NEWER than this pg-redis-mirror (${install.toolVersion}); use the version that installed it`);
  else if (install.upgradeNeeded) lines.push(`install   version ${install.version}, UPGRADE NEEDED to ${install.toolVersion}: run pg-redis-mirror install`);
  else lines.push(`install   version ${install.version}, up to date`);

  lines.push(`tables    ${report.tables.length} mirrored${report.tables.length === 0 ? ': add some with pg-redis-mirror install --table schema.name' : ''}`);
  for (const t of report.tables) lines.push(...formatTable(t));

  lines.push(
    backlog.entries === 0
      ? 'journal   0 entries'
      : `journal   ${backlog.entries} ${backlog.entries === 1 ? 'entry' : 'entries'}, oldest ${formatAge(backlog.oldestAgeSeconds ?? 0)} old`,
  );

  if (daemon.listening) {
    const many = daemon.sessions.length > 1 ? ` (${daemon.sessions.length} sessions; run one daemon per database and schema)` : '';
    lines.push(`daemon    listening${many}`);
    for (const s of daemon.sessions) {
      const from = s.clientAddr === null ? 'local socket or not visible to this role' : `${s.clientAddr}${s.clientPort === null ? '' : `:${s.clientPort}`}`;
      lines.push(`          pid ${s.pid} from ${from}, connected since ${s.backendStart ?? 'unknown'}`);
    }
  } else if (daemon.poolSessions > 0) {
    lines.push(`daemon    connected (${daemon.poolSessions} pool sessions) but NOT LISTENING: its LISTEN connection is down or reconnecting; changes are applied at each poll`);
  } else {
    lines.push('daemon    none listening: changes wait in the journal until `pg-redis-mirror listen` runs');
  }

  if (redis.reachable) lines.push(`redis     reachable at ${redis.address}${redis.keysCounted ? '' : ' (keys not counted)'}`);
  else lines.push(`redis     UNREACHABLE at ${redis.address}`);

  if (report.problems.length > 0) lines.push('');
  for (const p of report.problems) lines.push(`WARNING: ${p.message}`);
  return lines;
}

function formatTable(t: TableStatus): string[] {
  const lines = [`  ${t.table}`];
  lines.push(`    options   ${formatOptions(t)}`);
  if (!t.exists) lines.push('    table     DROPPED');
  else if (t.renamedTo !== null) lines.push(`    table     exists, renamed to ${t.renamedTo}`);
  else lines.push('    table     exists');
  lines.push(`    synced    ${t.syncedAt === null ? 'never: run pg-redis-mirror sync' : `${t.syncedAt} (${formatAge(t.syncedAgeSeconds ?? 0)} ago)`}`);
  if (t.exists) {
    const bad = t.triggers.filter((tr) => !tr.enabled);
    if (bad.length === 0 && t.captureFunction) {
      lines.push(`    triggers  ${t.triggers.length} of ${t.triggers.length} present and enabled`);
    } else {
      const each = t.triggers.map((tr) => `${tr.name} ${!tr.present ? 'DROPPED' : tr.firing === 'replica' ? 'REPLICA ONLY' : tr.enabled ? 'ok' : 'DISABLED'}`);
      lines.push(`    triggers  ${each.join(', ')}${t.captureFunction ? '' : '; capture function DROPPED'}`);
    }
    if (t.partitionsUncaptured.length > 0) lines.push(`    partitions without triggers: ${t.partitionsUncaptured.join(', ')}`);
    if (t.attachedTo !== null) lines.push(`    now a partition of ${t.attachedTo}`);
  }
  lines.push(`    keys      ${t.keys === null ? 'not counted' : String(t.keys)} (${t.keyPattern})`);
  return lines;
}

function formatOptions(t: TableStatus): string {
  const o = t.options;
  const parts = [o.format, `key ${o.keyColumns.join(', ')}`];
  if (o.columns !== null) parts.push(`columns ${o.columns.join(', ')}`);
  else if (o.exclude.length > 0) parts.push(`all columns except ${o.exclude.join(', ')}`);
  else parts.push('all columns');
  if (o.keyTemplate !== null) parts.push(`keyTemplate ${JSON.stringify(o.keyTemplate)}`);
  parts.push(`prefix ${JSON.stringify(o.prefix)}`);
  if (o.filter !== null) parts.push(`filter ${o.filter}`);
  return parts.join('; ');
}

/** 0.4 s, 12 s, 5 min, 3 h 20 min, 2 d 4 h. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, seconds);
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}
