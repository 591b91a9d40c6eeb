import { existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type pg from 'pg';
import { listTables, missingSchemas, type ListedTable } from '../catalog/list.js';
import { CONFIG_FILE_NAMES, loadConfig, resolveConfig, type Config, type ConfigOverrides } from '../config/load.js';
import { renderStarterConfig, starterFormatFor, starterSummary, type StarterConfig } from '../config/starter.js';
import { createPool } from '../db/connect.js';
import { describeDatabaseUrl, describePgError } from '../db/errors.js';
import { createDb } from '../db/kysely.js';
import { UserError, errorMessage, isUserError } from '../errors.js';
import { collect, globals } from './options.js';

export const DEFAULT_INIT_OUTPUT = 'pg-redis-mirror.yaml';

export interface InitOptions {
  /** Database URL, tool schema (never listed) and key prefix (written to the file). */
  config: Pick<Config, 'databaseUrl' | 'schema' | 'prefix'>;
  /** The file to write, relative to cwd; default pg-redis-mirror.yaml. `.json` writes JSON. */
  output?: string;
  force?: boolean;
  /** Only tables in these schemas. */
  schemas?: readonly string[];
  cwd?: string;
  /** Use this pool instead of connecting to config.databaseUrl. */
  pool?: pg.Pool;
}

export interface InitResult {
  /** Absolute path of the written file. */
  path: string;
  starter: StarterConfig;
  /** The one line to print: `wrote pg-redis-mirror.yaml: 3 tables, 1 without a primary key (commented out)`. */
  summary: string;
  /** Lines for stderr: tables left out of a JSON file, a config file that would shadow this one. */
  notes: string[];
}

/** Reads the catalog and writes a starter config listing the tables, their keys and columns. */
export async function runInit(options: InitOptions): Promise<InitResult> {
  const cwd = options.cwd ?? process.cwd();
  const display = options.output ?? DEFAULT_INIT_OUTPUT;
  const path = resolve(cwd, display);
  const force = options.force === true;
  refuseOverwrite(path, display, force);
  const schemas = options.schemas ?? [];
  const { config } = options;

  const pool = options.pool ?? createPool(config.databaseUrl, { max: 1 });
  let tables: ListedTable[];
  try {
    const db = createDb(pool);
    const missing = await missingSchemas(db, schemas);
    if (missing.length > 0) {
      throw new UserError(
        `schema ${missing.map((s) => JSON.stringify(s)).join(', ')} does not exist in ${describeDatabaseUrl(config.databaseUrl)}; check --schema-filter (names are case-sensitive)`,
      );
    }
    tables = await listTables(db, { toolSchema: config.schema, schemas });
  } catch (error) {
    throw describePgError(error, config.databaseUrl);
  } finally {
    if (options.pool === undefined) await pool.end();
  }
  if (tables.length === 0) {
    const where = schemas.length > 0 ? `schema ${schemas.map((s) => JSON.stringify(s)).join(', ')}` : 'any user schema';
    throw new UserError(
      `no tables found in ${where} of ${describeDatabaseUrl(config.databaseUrl)}; nothing written to ${display} (check --database-url / DATABASE_URL)`,
    );
  }

  const format = starterFormatFor(path);
  const starter = renderStarterConfig(tables, {
    format,
    schema: config.schema,
    prefix: config.prefix,
    source: describeDatabaseUrl(config.databaseUrl),
  });
  try {
    // 'wx' fails if the file appeared since the check above: never overwrite without --force.
    writeFileSync(path, starter.text, { encoding: 'utf8', flag: force ? 'w' : 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') refuseOverwrite(path, display, false);
    throw new UserError(`cannot write ${display}: ${errorMessage(error)}`, { cause: error });
  }
  return { path, starter, summary: starterSummary(display, starter, format), notes: [...starter.notes, ...shadowNotes(path, display)] };
}

function refuseOverwrite(path: string, display: string, force: boolean): void {
  if (!force && existsSync(path)) {
    throw new UserError(`${display} already exists; pass --force to overwrite it, or --output <file> to write another file`);
  }
}

/** A config file that loadConfig finds before this one in the same directory would win over it. */
function shadowNotes(path: string, display: string): string[] {
  const index = CONFIG_FILE_NAMES.indexOf(basename(path));
  if (index <= 0) return [];
  const earlier = CONFIG_FILE_NAMES.slice(0, index).find((name) => existsSync(resolve(dirname(path), name)));
  if (earlier === undefined) return [];
  return [`note: ${earlier} in the same directory is read before ${display}; remove it, or pass --config ${display}`];
}

/**
 * The config init works with: flags, environment and the config file as for every command,
 * except that the file being written is not read when it does not exist yet (`init --config
 * x.yaml` writes x.yaml), nor when it is broken and `--force` is about to replace it.
 */
function initConfig(command: Command, outputPath: string, force: boolean, cwd: string): Config {
  const o = globals(command);
  const base: ConfigOverrides = {};
  if (o.databaseUrl !== undefined) base.databaseUrl = o.databaseUrl;
  if (o.schema !== undefined) base.schema = o.schema;
  if (o.prefix !== undefined) base.prefix = o.prefix;
  const read = o.config !== undefined ? resolve(cwd, o.config) : CONFIG_FILE_NAMES.map((n) => resolve(cwd, n)).find((p) => existsSync(p));
  if (read === outputPath && !existsSync(outputPath)) return resolveConfig({}, base, process.env);
  try {
    return loadConfig(o.config === undefined ? base : { ...base, config: o.config }, process.env, cwd);
  } catch (error) {
    if (!force || !isUserError(error) || read !== outputPath) throw error;
    return resolveConfig({}, base, process.env);
  }
}

interface InitCommandOptions {
  output?: string;
  force?: boolean;
  schemaFilter?: string[];
}

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a starter config file listing the database tables with their primary keys and columns')
    .option('-o, --output <file>', `file to write (default: --config, else ${DEFAULT_INIT_OUTPUT}; a .json name writes JSON)`)
    .option('-f, --force', 'overwrite the file if it exists')
    .option('--schema-filter <schema>', 'only tables in this schema (repeatable)', collect)
    .action(async (options: InitCommandOptions, command: Command) => {
      const cwd = process.cwd();
      const output = options.output ?? globals(command).config ?? DEFAULT_INIT_OUTPUT;
      const force = options.force === true;
      // Before connecting: an existing file is the most likely mistake, and needs no database.
      refuseOverwrite(resolve(cwd, output), output, force);
      const config = initConfig(command, resolve(cwd, output), force, cwd);
      const result = await runInit({ config, output, force, schemas: options.schemaFilter ?? [], cwd });
      for (const note of result.notes) process.stderr.write(`${note}\n`);
      console.log(result.summary);
    });
}
