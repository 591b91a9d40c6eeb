import type pg from 'pg';
import { daemonApplicationName, listenApplicationName } from '../daemon/app-names.js';
import type { RedisClient } from '../redis/cluster.js';
import { sql } from 'kysely';
import { createDb, type Db } from '../db/kysely.js';
import { UserError, errorMessage } from '../errors.js';
import { formatTableName, type TableName } from '../config/table-name.js';
import type { ValueFormat } from '../config/load.js';
import { readBacklog, type Backlog } from '../daemon/backlog.js';
import { captureFunctionName, triggerNames, type TriggerNames } from '../install/names.js';
import { readInstallState, type InstalledTable } from '../install/state.js';
import { connectRedis, describeRedisUrl } from '../redis/connect.js';
import { keyLayout } from '../redis/keys.js';
import { scanKeys } from '../redis/scan.js';
import { quoteIdent, quoteQualified } from '../sql/quote.js';
import { SCHEMA_VERSION } from '../version.js';


export type TriggerEvent = keyof TriggerNames;

/**
 * pg_trigger.tgenabled, spelled out. Only `origin` and `always` fire in ordinary sessions
 * (session_replication_role = origin); `replica` fires only on logical-replication replicas.
 */
export type TriggerFiring = 'origin' | 'always' | 'replica' | 'disabled';

export interface TriggerStatus {
  event: TriggerEvent;
  name: string;
  present: boolean;
  /** Fires for ordinary sessions' changes. */
  enabled: boolean;
  /** null when the trigger is missing. */
  firing: TriggerFiring | null;
}

export interface TableOptions {
  format: ValueFormat;
  keyColumns: string[];
  /** Mirrored columns, or null for "every column but `exclude`". */
  columns: string[] | null;
  exclude: string[];
  keyTemplate: string | null;
  prefix: string;
  /** Row filter as installed (PostgreSQL's printing of it), null when every row is mirrored. */
  filter: string | null;
}

export interface TableStatus {
  /** As registered by install (schema.table). */
  table: string;
  schema: string;
  name: string;
  oid: number;
  exists: boolean;
  /** Where the table is now; null when it was dropped. */
  current: TableName | null;
  /** Where the table is now when it was renamed since install, else null. */
  renamedTo: string | null;
  options: TableOptions;
  /** ISO 8601 (UTC). */
  installedAt: string;
  /** When `sync` last copied the whole table; null: never (or its options changed since). */
  syncedAt: string | null;
  syncedAgeSeconds: number | null;
  captureFunction: boolean;
  triggers: TriggerStatus[];
  /** Partitions whose own triggers are missing or disabled (statements made straight to them are not captured). */
  partitionsUncaptured: string[];
  /** The partitioned table this table was attached to as a partition since install, or null. */
  attachedTo: string | null;
  /** SCAN MATCH pattern of the table's keys. */
  keyPattern: string;
  /** Keys matching keyPattern; null when not counted (Redis unreachable, or counting skipped). */
  keys: number | null;
}

export interface DaemonSession {
  pid: number;
  /** null for a Unix-socket connection, or when this role may not see other roles' sessions. */
  clientAddr: string | null;
  clientPort: number | null;
  /** ISO 8601 (UTC); null when this role may not see it. */
  backendStart: string | null;
  state: string | null;
}

/**
 * Daemons connected to this database. PostgreSQL only shows a session's own LISTEN channels
 * (pg_listening_channels), so listeners are recognized by their application_name in
 * pg_stat_activity: a daemon of any tool schema in this database counts.
 */
export interface DaemonStatus {
  listening: boolean;
  /** The LISTEN connections ('pg-redis-mirror listen'). */
  sessions: DaemonSession[];
  /** Connections of daemon pools ('pg-redis-mirror daemon'): a daemon whose LISTEN connection is reconnecting still has these. */
  poolSessions: number;
  // Leader election will add `leader` here.
}

export interface RedisStatus {
  /** host:port, never a password. */
  address: string;
  reachable: boolean;
  error: string | null;
  keysCounted: boolean;
}

export type ProblemKind =
  | 'upgrade-needed'
  | 'tool-outdated'
  | 'table-dropped'
  | 'function-missing'
  | 'trigger-dropped'
  | 'trigger-disabled'
  | 'trigger-replica-only'
  | 'partition-uncaptured'
  | 'table-attached'
  | 'redis-unreachable';

/** Something that needs a person: the CLI prints each as a WARNING line and exits 2. */
export interface StatusProblem {
  kind: ProblemKind;
  table: string | null;
  trigger: string | null;
  message: string;
}

export interface StatusReport {
  schema: string;
  install: {
    /** meta 'version', null when missing. */
    version: string | null;
    toolVersion: string;
    /** The install is older than (or different from) what this tool installs: re-run install. */
    upgradeNeeded: boolean;
    /** The install was made by a newer pg-redis-mirror: upgrade the tool, not the install. */
    newerThanTool: boolean;
  };
  tables: TableStatus[];
  backlog: Backlog;
  daemon: DaemonStatus;
  redis: RedisStatus;
  problems: StatusProblem[];
}

export interface StatusOptions {
  /** The tool's schema. */
  schema: string;
  redisUrl: string;
  /** Only these tables (all mirrored tables when absent or empty). */
  tables?: TableName[];
  /** SCAN Redis for each table's keys (default true); reachability is checked either way. */
  countKeys?: boolean;
  /** SCAN COUNT hint (default 1000). */
  scanCount?: number;
}

const EVENTS: readonly TriggerEvent[] = ['insert', 'update', 'delete', 'truncate', 'keyChange'];

const FIRING: Record<string, TriggerFiring> = { O: 'origin', A: 'always', R: 'replica', D: 'disabled' };

/**
 * Gathers the state of one install: PostgreSQL first (a UserError when it is not installed),
 * then Redis, whose failure is reported in the result rather than thrown.
 */
export async function readStatus(pool: pg.Pool, options: StatusOptions): Promise<StatusReport> {
  const db = createDb(pool);
  const state = await readInstallState(db, options.schema, captureFunctionName);
  if (!state.schemaExists || !(await hasRegistry(db, options.schema))) {
    throw new UserError(
      `pg-redis-mirror is not installed in this database (no schema "${options.schema}"); run \`pg-redis-mirror install\` first, or pass the --schema it was installed with`,
    );
  }
  const names = triggerNames(options.schema);
  const installed = selectTables(state.tables, options.tables);
  const details = await readTableDetails(db, options.schema, names);
  const tables = installed.map((t) => tableStatus(t, details.get(t.oid), names));
  const backlog = await readBacklog(pool, options.schema);
  const daemon = await readDaemonStatus(pool, options.schema);
  const redis = await countKeys(tables, options);
  const report: StatusReport = {
    schema: options.schema,
    install: {
      version: state.version,
      toolVersion: SCHEMA_VERSION,
      upgradeNeeded: state.version !== SCHEMA_VERSION && !isNewer(state.version, SCHEMA_VERSION),
      newerThanTool: isNewer(state.version, SCHEMA_VERSION),
    },
    tables,
    backlog,
    daemon,
    redis,
    problems: [],
  };
  report.problems = findProblems(report);
  return report;
}

async function hasRegistry(db: Db, toolSchema: string): Promise<boolean> {
  const result = await sql<{ oid: string | null }>`SELECT to_regclass(${`${quoteIdent(toolSchema)}.tables`})::oid AS oid`.execute(db);
  return result.rows[0]?.oid !== null && result.rows[0] !== undefined;
}

/** The install was made by a newer pg-redis-mirror (versions are integers). */
function isNewer(installed: string | null, tool: string): boolean {
  return installed !== null && /^\d+$/.test(installed) && /^\d+$/.test(tool) && Number(installed) > Number(tool);
}

function selectTables(all: InstalledTable[], wanted: TableName[] | undefined): InstalledTable[] {
  if (wanted === undefined || wanted.length === 0) return all;
  return wanted.map((w) => {
    const found = all.find(
      (t) => (t.schema === w.schema && t.name === w.name) || (t.current !== null && t.current.schema === w.schema && t.current.name === w.name),
    );
    if (found === undefined) {
      throw new UserError(`table ${formatTableName(w)} is not mirrored; add it with \`pg-redis-mirror install --table ${formatTableName(w)}\``);
    }
    return found;
  });
}

interface TableDetails {
  installedAt: string;
  syncedAt: string | null;
  syncedAgeSeconds: number | null;
  /** tgenabled by trigger name, for our triggers present on the table. */
  triggers: Map<string, string>;
}

async function readTableDetails(db: Db, toolSchema: string, names: TriggerNames): Promise<Map<number, TableDetails>> {
  const registry = await sql<{ oid: string; installed: string; synced: string | null; synced_age: string | null }>`
    SELECT rel::oid AS oid, extract(epoch FROM installed_at) AS installed, extract(epoch FROM synced_at) AS synced,
           extract(epoch FROM now() - synced_at) AS synced_age
    FROM ${sql.id(toolSchema, 'tables')}`.execute(db);
  const triggers = await sql<{ oid: string; tgname: string; tgenabled: string }>`
    SELECT t.tgrelid::oid AS oid, t.tgname, t.tgenabled
    FROM pg_catalog.pg_trigger t
    WHERE t.tgrelid IN (SELECT rel FROM ${sql.id(toolSchema, 'tables')}) AND t.tgname = ANY(${Object.values(names)}::text[])`.execute(db);
  const details = new Map<number, TableDetails>();
  for (const r of registry.rows) {
    details.set(Number(r.oid), {
      installedAt: isoFromEpoch(r.installed),
      syncedAt: r.synced === null ? null : isoFromEpoch(r.synced),
      syncedAgeSeconds: r.synced_age === null ? null : Number(r.synced_age),
      triggers: new Map(),
    });
  }
  for (const t of triggers.rows) details.get(Number(t.oid))?.triggers.set(t.tgname, t.tgenabled);
  return details;
}

function isoFromEpoch(epoch: string): string {
  return new Date(Math.round(Number(epoch) * 1000)).toISOString();
}

function tableStatus(t: InstalledTable, details: TableDetails | undefined, names: TriggerNames): TableStatus {
  const table = formatTableName(t);
  const where = t.current ?? { schema: t.schema, name: t.name };
  // The daemon builds keys from where the table is now (src/daemon/table-plan.ts).
  const layout = keyLayout({ prefix: t.spec.prefix, schema: where.schema, name: where.name, keyColumns: t.spec.keyColumns, keyTemplate: t.spec.keyTemplate });
  const renamed = t.current !== null && (t.current.schema !== t.schema || t.current.name !== t.name);
  return {
    table,
    schema: t.schema,
    name: t.name,
    oid: t.oid,
    exists: t.tableExists,
    current: t.current,
    renamedTo: renamed && t.current !== null ? formatTableName(t.current) : null,
    options: {
      format: t.spec.format,
      keyColumns: t.spec.keyColumns,
      columns: t.spec.columns,
      exclude: t.spec.exclude,
      keyTemplate: t.spec.keyTemplate,
      prefix: t.spec.prefix,
      filter: t.spec.filter ?? null,
    },
    installedAt: details?.installedAt ?? '',
    syncedAt: details?.syncedAt ?? null,
    syncedAgeSeconds: details?.syncedAgeSeconds ?? null,
    captureFunction: t.functionExists,
    triggers: EVENTS.map((event) => {
      const name = names[event];
      const code = details?.triggers.get(name);
      const firing = code === undefined ? null : (FIRING[code] ?? 'disabled');
      return { event, name, present: code !== undefined, enabled: firing === 'origin' || firing === 'always', firing };
    }),
    partitionsUncaptured: t.partitionsUncaptured,
    attachedTo: t.attachedTo,
    keyPattern: layout.pattern,
    keys: null,
  };
}

/** LISTEN connections of pg-redis-mirror daemons connected to this database. */
export async function readDaemonStatus(pool: pg.Pool | pg.ClientBase, toolSchema: string): Promise<DaemonStatus> {
  const listenName = listenApplicationName(toolSchema);
  const poolName = daemonApplicationName(toolSchema);
  const result = await pool.query<{
    pid: string;
    application_name: string;
    client_addr: string | null;
    client_port: string | null;
    backend_start: string | null;
    state: string | null;
  }>(
    `SELECT pid, application_name, host(client_addr) AS client_addr, client_port, extract(epoch FROM backend_start) AS backend_start, state
     FROM pg_catalog.pg_stat_activity
     WHERE datname = current_database() AND application_name = ANY($1::text[]) AND pid <> pg_backend_pid()
     ORDER BY backend_start, pid`,
    [[listenName, poolName]],
  );
  const sessions = result.rows
    .filter((r) => r.application_name === listenName)
    .map((r) => ({
      pid: Number(r.pid),
      clientAddr: r.client_addr,
      clientPort: r.client_port === null ? null : Number(r.client_port),
      backendStart: r.backend_start === null ? null : isoFromEpoch(r.backend_start),
      state: r.state,
    }));
  return {
    listening: sessions.length > 0,
    sessions,
    poolSessions: result.rows.filter((r) => r.application_name === poolName).length,
  };
}

/** Fills in each table's key count; Redis being away is a finding, not an error. */
async function countKeys(tables: TableStatus[], options: StatusOptions): Promise<RedisStatus> {
  const status: RedisStatus = { address: describeRedisUrl(options.redisUrl), reachable: false, error: null, keysCounted: false };
  let redis: RedisClient;
  try {
    redis = await connectRedis(options.redisUrl);
  } catch (error) {
    status.error = errorMessage(error);
    return status;
  }
  try {
    status.reachable = true;
    if (options.countKeys === false) return status;
    for (const table of tables) {
      let n = 0;
      for await (const keys of scanKeys(redis, table.keyPattern, options.scanCount ?? 1000)) n += keys.length;
      table.keys = n;
    }
    status.keysCounted = true;
  } catch (error) {
    for (const table of tables) table.keys = null;
    status.reachable = false;
    status.error = `Redis at ${status.address} failed while counting keys: ${errorMessage(error)}`;
  } finally {
    redis.disconnect();
  }
  return status;
}

const EVENT_TEXT: Record<TriggerEvent, string> = {
  insert: 'INSERTs',
  update: 'UPDATEs',
  delete: 'DELETEs',
  truncate: 'TRUNCATEs',
  keyChange: 'primary-key changes (old keys stay in Redis)',
};

function findProblems(report: StatusReport): StatusProblem[] {
  const problems: StatusProblem[] = [];
  const { version, toolVersion } = report.install;
  if (report.install.upgradeNeeded) {
    problems.push({
      kind: 'upgrade-needed',
      table: null,
      trigger: null,
      message:
        version === null
          ? `the install in schema ${report.schema} has no version (incomplete install); run pg-redis-mirror install`
          : `the install in schema ${report.schema} is version ${version}, this pg-redis-mirror installs version ${toolVersion}; run pg-redis-mirror install to upgrade it`,
    });
  }
  if (report.install.newerThanTool) {
    problems.push({
      kind: 'tool-outdated',
      table: null,
      trigger: null,
      message: `the install in schema ${report.schema} is version ${version ?? '?'}, newer than this pg-redis-mirror (version ${toolVersion}); use the pg-redis-mirror that installed it`,
    });
  }
  for (const t of report.tables) {
    if (!t.exists) {
      problems.push({
        kind: 'table-dropped',
        table: t.table,
        trigger: null,
        message: `table ${t.table} was dropped but is still registered; run pg-redis-mirror install to update the registry`,
      });
      continue;
    }
    const where = t.renamedTo ?? t.table;
    if (!t.captureFunction) {
      problems.push({
        kind: 'function-missing',
        table: t.table,
        trigger: null,
        message: `the capture function of table ${where} was dropped: changes to this table are not being mirrored; run pg-redis-mirror install to restore it`,
      });
    }
    for (const trigger of t.triggers) {
      if (!trigger.present) {
        problems.push({
          kind: 'trigger-dropped',
          table: t.table,
          trigger: trigger.name,
          message: `trigger ${trigger.name} on table ${where} was dropped (${EVENT_TEXT[trigger.event]} are not captured): changes to this table are not being mirrored; run pg-redis-mirror install to restore it`,
        });
      } else if (trigger.firing === 'disabled') {
        problems.push({
          kind: 'trigger-disabled',
          table: t.table,
          trigger: trigger.name,
          message: `trigger ${trigger.name} on table ${where} is disabled (${EVENT_TEXT[trigger.event]} are not captured): changes to this table are not being mirrored; run pg-redis-mirror install to restore it`,
        });
      } else if (trigger.firing === 'replica') {
        const alter = `ALTER TABLE ${quoteQualified(t.current?.schema ?? t.schema, t.current?.name ?? t.name)} ENABLE TRIGGER ${quoteIdent(trigger.name)}`;
        problems.push({
          kind: 'trigger-replica-only',
          table: t.table,
          trigger: trigger.name,
          message: `trigger ${trigger.name} on table ${where} fires only in replica sessions (ENABLE REPLICA TRIGGER; ${EVENT_TEXT[trigger.event]} are not captured): changes to this table are not being mirrored; run ${alter} to restore it`,
        });
      }
    }
  }
  for (const t of report.tables) {
    if (t.exists && t.attachedTo !== null) {
      problems.push({
        kind: 'table-attached',
        table: t.table,
        trigger: null,
        message: `table ${t.renamedTo ?? t.table} is now a partition of ${t.attachedTo}: writes made through ${t.attachedTo} are not being mirrored; mirror ${t.attachedTo} instead (replace the table in the config and run pg-redis-mirror install)`,
      });
    }
    if (!t.exists || t.partitionsUncaptured.length === 0) continue;
    problems.push({
      kind: 'partition-uncaptured',
      table: t.table,
      trigger: null,
      message: `partition ${t.partitionsUncaptured.join(', ')} of table ${t.renamedTo ?? t.table} has none or not all of the capture triggers (created or attached after install): statements made straight to it are not being mirrored; run pg-redis-mirror install, then pg-redis-mirror verify --repair`,
    });
  }
  if (!report.redis.reachable) {
    problems.push({ kind: 'redis-unreachable', table: null, trigger: null, message: `Redis is unreachable: ${report.redis.error ?? 'unknown error'}` });
  }
  return problems;
}
