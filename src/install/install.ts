import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import { sql } from 'kysely';
import type { Config } from '../config/load.js';
import { formatTableName, type TableName } from '../config/table-name.js';
import { createDb, type Db } from '../db/kysely.js';
import { createPool } from '../db/connect.js';
import { describeDatabaseUrl, describePgError } from '../db/errors.js';
import { checkPostgresVersion } from '../db/server-version.js';
import { UserError, errorMessage } from '../errors.js';
import { SCHEMA_VERSION } from '../version.js';
import { captureFunctionName } from './names.js';
import { DEFAULT_LOCK_TIMEOUT_MS, renderLocks, renderPreamble, renderReload, renderSchema, renderTable, renderUnschema, renderUntable, specHash } from './render.js';
import { resolveTableSpec, type TableSpec } from './spec.js';
import { TRIGGERS_PER_TABLE, readInstallState, type InstallState, type InstalledTable } from './state.js';

export type TableAction = 'create' | 'update' | 'unchanged' | 'remove';

export interface TableChange {
  table: string;
  action: TableAction;
  /** Why an update is needed (options changed, trigger dropped or disabled...). */
  reason?: string;
}

export interface Plan {
  schemaAction: 'create' | 'upgrade' | 'unchanged' | 'remove';
  tables: TableChange[];
  /** The statements after the preamble; empty when there is nothing to do. */
  body: string;
}

export interface PlanResult extends Plan {
  /** The whole script as it runs: BEGIN, preamble, body, COMMIT. */
  script: string;
}

function readState(db: Db, toolSchema: string): Promise<InstallState> {
  return readInstallState(db, toolSchema, captureFunctionName);
}

/**
 * `reverseLocks`: take the table locks in the opposite order. Holding one table's lock while
 * waiting for another's deadlocks with an application transaction that writes them the other
 * way round (our lock timeout then ends it, and the application goes on); retries alternate
 * the order, so such transactions cannot keep an install from ever getting through.
 */
export async function planInstall(db: Db, config: Config, reverseLocks = false): Promise<Plan> {
  if (config.tables.length === 0) {
    throw new UserError('no tables configured: pass --table schema.name or list "tables" in pg-redis-mirror.json (see `pg-redis-mirror init`)');
  }
  await checkPostgresVersion(db, describeDatabaseUrl(config.databaseUrl));
  const specs: TableSpec[] = [];
  for (const table of config.tables) specs.push(await resolveTableSpec(db, table));
  const state = await readState(db, config.schema);
  const parts: string[] = [];
  let schemaAction: Plan['schemaAction'] = 'unchanged';
  if (!state.schemaExists || state.version === null) schemaAction = 'create';
  else if (state.version !== SCHEMA_VERSION) schemaAction = 'upgrade';
  if (schemaAction !== 'unchanged') parts.push(renderSchema(config.schema));

  const changes: TableChange[] = [];
  const triggered: TableName[] = [];
  const dropped: TableName[] = [];
  for (const spec of specs) {
    const installed = state.tables.find((t) => t.oid === spec.oid);
    const reason = installed === undefined ? undefined : updateReason(config.schema, spec, installed);
    const table = formatTableName(spec);
    if (installed === undefined) {
      changes.push({ table, action: 'create' });
    } else if (reason !== undefined || schemaAction === 'upgrade') {
      changes.push({ table, action: 'update', reason: reason ?? 'upgrade' });
    } else {
      changes.push({ table, action: 'unchanged' });
      continue;
    }
    triggered.push(spec);
    parts.push(renderTable(config.schema, spec));
  }
  for (const installed of state.tables) {
    if (specs.some((s) => s.oid === installed.oid)) continue;
    changes.push({ table: formatTableName(installed), action: 'remove' });
    if (installed.current !== null) dropped.push(installed.current);
    parts.push(renderUntable(config.schema, installed));
  }
  if (parts.length > 0) parts.push(renderReload(config.schema));
  const locks = renderLocks(triggered, dropped, reverseLocks);
  return { schemaAction, tables: changes, body: parts.length === 0 ? '' : `${locks}${parts.join('\n')}` };
}

function updateReason(toolSchema: string, spec: TableSpec, installed: InstalledTable): string | undefined {
  if (installed.specHash !== specHash(toolSchema, spec)) {
    // Same options, other hash: the tool's capture function changed (an upgrade).
    return isDeepStrictEqual(installed.spec, spec.stored) ? 'capture function upgraded' : 'options changed';
  }
  if (!installed.functionExists) return 'capture function missing';
  if (installed.triggersPresent < TRIGGERS_PER_TABLE) return 'trigger dropped';
  if (installed.triggersEnabled < TRIGGERS_PER_TABLE) return 'trigger disabled';
  if (installed.partitionsUncaptured.length > 0) return `partition ${installed.partitionsUncaptured.join(', ')} without triggers`;
  if (installed.strayTriggers > 0) return 'triggers left on a detached partition';
  return undefined;
}

export async function planUninstall(db: Db, toolSchema: string, reverseLocks = false): Promise<Plan> {
  const state = await readState(db, toolSchema);
  if (!state.schemaExists) return { schemaAction: 'unchanged', tables: [], body: '' };
  const parts = state.tables.map((t) => renderUntable(toolSchema, t));
  parts.push(renderUnschema(toolSchema));
  const dropped = state.tables.flatMap((t) => (t.current === null ? [] : [t.current]));
  return {
    schemaAction: 'remove',
    tables: state.tables.map((t) => ({ table: formatTableName(t), action: 'remove' as const })),
    body: `${renderLocks([], dropped, reverseLocks)}${parts.join('\n')}`,
  };
}

function wrap(toolSchema: string, body: string, lockTimeoutMs?: number): string {
  if (body === '') return `-- nothing to do: the install in schema ${toolSchema} is up to date\n`;
  return `BEGIN;\n${renderPreamble(toolSchema, lockTimeoutMs)}\n${body}\nCOMMIT;\n`;
}

/** How install and uninstall wait for table locks while the application writes. */
export interface LockPolicy {
  /** lock_timeout of each attempt (default DEFAULT_LOCK_TIMEOUT_MS). */
  lockTimeoutMs?: number;
  /** Attempts before giving up (default 10, about 15 s); each starts over in a new transaction. */
  attempts?: number;
  /** Told before each retry, e.g. to log that a lock was busy. */
  onRetry?: (info: { attempt: number; attempts: number; delayMs: number; error: unknown }) => void;
}

/** lock_not_available (our lock_timeout), deadlock_detected: nothing was done, try again. */
const RETRYABLE = new Set(['55P03', '40P01']);

/**
 * Plans and runs in one transaction, under the install lock, so the plan is what runs. A table
 * lock not granted within the lock timeout rolls the attempt back, and after a pause (in which
 * the application's writers go on) it starts over; see the README's "Locks taken by install
 * and uninstall".
 */
async function runPlanned(config: Config, what: 'install' | 'uninstall', planner: (db: Db, reverseLocks: boolean) => Promise<Plan>, pool: pg.Pool | undefined, policy: LockPolicy): Promise<PlanResult> {
  const ownPool = pool === undefined;
  const usedPool = pool ?? createPool(config.databaseUrl, { max: 1 });
  const db = createDb(usedPool);
  const lockTimeoutMs = policy.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const attempts = policy.attempts ?? 10;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction().execute(async (trx) => {
          await sql.raw(renderPreamble(config.schema, lockTimeoutMs)).execute(trx);
          const plan = await planner(trx, attempt % 2 === 0);
          if (plan.body !== '') await sql.raw(plan.body).execute(trx);
          return { ...plan, script: wrap(config.schema, plan.body, lockTimeoutMs) };
        });
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code !== 'string' || !RETRYABLE.has(code)) throw error;
        if (attempt >= attempts) {
          throw new UserError(
            `${what} gave up after ${attempts} attempts to lock the mirrored tables (each waiting ${lockTimeoutMs} ms): ${errorMessage(error)}; ` +
              `a long-running transaction is probably using one of them (look for old xact_start in pg_stat_activity): end it, or retry with a larger --lock-timeout`,
            { cause: error },
          );
        }
        // Exponential with jitter, so that a retry does not meet the same burst of writers.
        const delayMs = Math.round(Math.min(100 * 2 ** (attempt - 1), 2000) * (0.5 + Math.random()));
        policy.onRetry?.({ attempt, attempts, delayMs, error });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  } catch (error) {
    throw describePgError(error, config.databaseUrl);
  } finally {
    if (ownPool) await db.destroy();
  }
}

export function install(config: Config, pool?: pg.Pool, policy: LockPolicy = {}): Promise<PlanResult> {
  return runPlanned(config, 'install', (db, reverse) => planInstall(db, config, reverse), pool, policy);
}

export function uninstall(config: Config, pool?: pg.Pool, policy: LockPolicy = {}): Promise<PlanResult> {
  return runPlanned(config, 'uninstall', (db, reverse) => planUninstall(db, config.schema, reverse), pool, policy);
}

/** The script `install`/`uninstall` would run now, without running it. */
export async function renderPlanned(config: Config, which: 'install' | 'uninstall', pool?: pg.Pool): Promise<PlanResult> {
  const ownPool = pool === undefined;
  const usedPool = pool ?? createPool(config.databaseUrl, { max: 1 });
  const db = createDb(usedPool);
  try {
    const plan = which === 'install' ? await planInstall(db, config) : await planUninstall(db, config.schema);
    return { ...plan, script: wrap(config.schema, plan.body) };
  } catch (error) {
    throw describePgError(error, config.databaseUrl);
  } finally {
    if (ownPool) await db.destroy();
  }
}
