import { isDeepStrictEqual } from 'node:util';
import type pg from 'pg';
import { sql } from 'kysely';
import type { Config } from '../config/load.js';
import { formatTableName } from '../config/table-name.js';
import { createDb, type Db } from '../db/kysely.js';
import { createPool } from '../db/connect.js';
import { describePgError } from '../db/errors.js';
import { UserError } from '../errors.js';
import { SCHEMA_VERSION } from '../version.js';
import { captureFunctionName } from './names.js';
import { renderPreamble, renderReload, renderSchema, renderTable, renderUnschema, renderUntable, specHash } from './render.js';
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

export async function planInstall(db: Db, config: Config): Promise<Plan> {
  if (config.tables.length === 0) {
    throw new UserError('no tables configured: pass --table schema.name or list "tables" in pg-redis-mirror.json (see `pg-redis-mirror init`)');
  }
  const specs: TableSpec[] = [];
  for (const table of config.tables) specs.push(await resolveTableSpec(db, table));
  const state = await readState(db, config.schema);
  const parts: string[] = [];
  let schemaAction: Plan['schemaAction'] = 'unchanged';
  if (!state.schemaExists || state.version === null) schemaAction = 'create';
  else if (state.version !== SCHEMA_VERSION) schemaAction = 'upgrade';
  if (schemaAction !== 'unchanged') parts.push(renderSchema(config.schema));

  const changes: TableChange[] = [];
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
    parts.push(renderTable(config.schema, spec));
  }
  for (const installed of state.tables) {
    if (specs.some((s) => s.oid === installed.oid)) continue;
    changes.push({ table: formatTableName(installed), action: 'remove' });
    parts.push(renderUntable(config.schema, installed));
  }
  if (parts.length > 0) parts.push(renderReload(config.schema));
  return { schemaAction, tables: changes, body: parts.join('\n') };
}

function updateReason(toolSchema: string, spec: TableSpec, installed: InstalledTable): string | undefined {
  if (installed.specHash !== specHash(toolSchema, spec)) {
    // Same options, other hash: the tool's capture function changed (an upgrade).
    return isDeepStrictEqual(installed.spec, spec.stored) ? 'capture function upgraded' : 'options changed';
  }
  if (!installed.functionExists) return 'capture function missing';
  if (installed.triggersPresent < TRIGGERS_PER_TABLE) return 'trigger dropped';
  if (installed.triggersEnabled < TRIGGERS_PER_TABLE) return 'trigger disabled';
  return undefined;
}

export async function planUninstall(db: Db, toolSchema: string): Promise<Plan> {
  const state = await readState(db, toolSchema);
  if (!state.schemaExists) return { schemaAction: 'unchanged', tables: [], body: '' };
  const parts = state.tables.map((t) => renderUntable(toolSchema, t));
  parts.push(renderUnschema(toolSchema));
  return {
    schemaAction: 'remove',
    tables: state.tables.map((t) => ({ table: formatTableName(t), action: 'remove' as const })),
    body: parts.join('\n'),
  };
}

function wrap(toolSchema: string, body: string): string {
  if (body === '') return `-- nothing to do: the install in schema ${toolSchema} is up to date\n`;
  return `BEGIN;\n${renderPreamble(toolSchema)}\n${body}\nCOMMIT;\n`;
}

/** Plans and runs in one transaction, under the install lock, so the plan is what runs. */
async function runPlanned(config: Config, planner: (db: Db) => Promise<Plan>, pool?: pg.Pool): Promise<PlanResult> {
  const ownPool = pool === undefined;
  const usedPool = pool ?? createPool(config.databaseUrl, { max: 1 });
  const db = createDb(usedPool);
  try {
    return await db.transaction().execute(async (trx) => {
      await sql.raw(renderPreamble(config.schema)).execute(trx);
      const plan = await planner(trx);
      if (plan.body !== '') await sql.raw(plan.body).execute(trx);
      return { ...plan, script: wrap(config.schema, plan.body) };
    });
  } catch (error) {
    throw describePgError(error, config.databaseUrl);
  } finally {
    if (ownPool) await db.destroy();
  }
}

export function install(config: Config, pool?: pg.Pool): Promise<PlanResult> {
  return runPlanned(config, (db) => planInstall(db, config), pool);
}

export function uninstall(config: Config, pool?: pg.Pool): Promise<PlanResult> {
  return runPlanned(config, (db) => planUninstall(db, config.schema), pool);
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
