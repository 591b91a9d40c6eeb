import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { UserError, errorMessage } from '../errors.js';
import { configFileSchema, type ConfigFile, type TableConfigInput } from './schema.js';
import { formatTableName, parseTableName, type TableName } from './table-name.js';

export type ValueFormat = 'hash' | 'json';

export interface TableConfig extends TableName {
  key?: string[];
  columns?: string[];
  exclude?: string[];
  format: ValueFormat;
  keyTemplate?: string;
  prefix: string;
  /** Daemon group (see DEFAULT_GROUP). */
  group?: string;
  /** Seconds; see StoredSpec. */
  ttl?: number;
  stream?: { maxLen: number };
  publish?: string;
  /** A SQL boolean expression over the table's columns: only matching rows are mirrored. */
  filter?: string;
}

/** An unbounded stream would grow with every change for ever. */
export const DEFAULT_STREAM_MAX_LEN = 10_000;

export interface Config {
  databaseUrl: string;
  redisUrl: string;
  schema: string;
  prefix: string;
  batchSize: number;
  pollIntervalMs: number;
  /** `listen` serves /metrics and /healthz here when set. */
  metricsPort?: number;
  metricsHost?: string;
  tables: TableConfig[];
  configPath?: string;
}

/** What the command line can say; every field overrides the config file. */
export interface ConfigOverrides {
  config?: string;
  databaseUrl?: string;
  redisUrl?: string;
  schema?: string;
  prefix?: string;
  tables?: string[];
  batchSize?: number;
  metricsPort?: number;
  metricsHost?: string;
}

/** Tables without a group, and daemons without --group, belong to this one. */
export const DEFAULT_GROUP = 'default';

export const DEFAULTS = {
  databaseUrl: 'postgres://localhost:5432/postgres',
  redisUrl: 'redis://127.0.0.1:6379',
  schema: 'redis_mirror',
  prefix: 'pg:',
  batchSize: 2000,
  pollIntervalMs: 1000,
} as const;

export const CONFIG_FILE_NAMES = ['pg-redis-mirror.json', 'pg-redis-mirror.yaml', 'pg-redis-mirror.yml'];

export function loadConfig(overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const path = overrides.config !== undefined ? resolve(cwd, overrides.config) : findConfigFile(cwd);
  if (overrides.config !== undefined && (path === undefined || !existsSync(path))) {
    throw new UserError(`config file ${overrides.config} does not exist; run \`pg-redis-mirror init\` to write one or fix --config`);
  }
  const file = path === undefined ? {} : readConfigFile(path);
  return resolveConfig(file, overrides, env, path);
}

export function resolveConfig(file: ConfigFile, overrides: ConfigOverrides, env: NodeJS.ProcessEnv, path?: string): Config {
  const prefix = overrides.prefix ?? file.prefix ?? DEFAULTS.prefix;
  const where = path ?? 'config';
  const tables: TableConfig[] = (file.tables ?? []).map((entry, i) => toTableConfig(entry, prefix, `${where}: tables[${i}]`));
  for (const text of overrides.tables ?? []) {
    const name = parseTableName(text);
    if (!tables.some((t) => t.schema === name.schema && t.name === name.name)) {
      tables.push({ ...name, format: 'hash', prefix });
    }
  }
  const seen = new Set<string>();
  for (const t of tables) {
    const id = formatTableName(t);
    if (seen.has(id)) throw new UserError(`${where}: table ${id} is listed twice; keep one entry`);
    seen.add(id);
  }
  return {
    databaseUrl: overrides.databaseUrl ?? env.DATABASE_URL ?? file.databaseUrl ?? DEFAULTS.databaseUrl,
    redisUrl: clusterUrl(overrides.redisUrl ?? env.REDIS_URL ?? file.redisUrl ?? DEFAULTS.redisUrl, file.cluster === true),
    schema: overrides.schema ?? file.schema ?? DEFAULTS.schema,
    prefix,
    batchSize: overrides.batchSize ?? file.batchSize ?? DEFAULTS.batchSize,
    pollIntervalMs: file.pollIntervalMs ?? DEFAULTS.pollIntervalMs,
    ...optional('metricsPort', overrides.metricsPort ?? file.metricsPort),
    ...optional('metricsHost', overrides.metricsHost ?? file.metricsHost),
    tables,
    ...(path === undefined ? {} : { configPath: path }),
  };
}

/**
 * `cluster: true` in the config file makes a redis:// (rediss://) URL name a cluster's seed
 * nodes, as redis+cluster:// (rediss+cluster://) does; from then on only the URL says which.
 */
function clusterUrl(url: string, cluster: boolean): string {
  return cluster ? url.replace(/^(rediss?):\/\//i, '$1+cluster://') : url;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function findConfigFile(cwd: string): string | undefined {
  for (const name of CONFIG_FILE_NAMES) {
    const candidate = resolve(cwd, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read config file ${path}: ${errorMessage(error)}`);
  }
  let data: unknown;
  const isJson = path.endsWith('.json');
  try {
    data = isJson ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    const firstLine = errorMessage(error).split('\n')[0];
    throw new UserError(`config file ${path} is not valid ${isJson ? 'JSON' : 'YAML'}: ${firstLine}`);
  }
  const parsed = configFileSchema.safeParse(data ?? {});
  if (!parsed.success) throw new UserError(`config file ${path}: ${describeIssue(parsed.error.issues[0])}`);
  return parsed.data;
}

function describeIssue(issue: z.core.$ZodIssue | undefined): string {
  if (issue === undefined) return 'invalid';
  if (issue.code === 'invalid_union') {
    // A table entry is a string or an object: report the branch that got furthest, e.g.
    // `tables[0].format` for an object with a bad format, rather than "matches neither".
    const deepest = issue.errors.flat().sort((a, b) => b.path.length - a.path.length)[0];
    if (deepest !== undefined && deepest.path.length > 0) {
      return describeIssue({ ...deepest, path: [...issue.path, ...deepest.path] } as z.core.$ZodIssue);
    }
  }
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
  if (issue.code === 'unrecognized_keys') {
    const where = path === '' ? '' : `${path}: `;
    return `${where}unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; check its spelling against the README's config reference`;
  }
  if (issue.code === 'invalid_union') return `${path}: must be a table name ("schema.table") or a table object ({ "table": ... })`;
  return `${path === '' ? 'top level' : path}: ${issue.message}`;
}

function toTableConfig(entry: string | TableConfigInput, prefix: string, where: string): TableConfig {
  if (typeof entry === 'string') return { ...parseTableName(entry), format: 'hash', prefix };
  let name: TableName;
  if (entry.table !== undefined) {
    if (entry.name !== undefined || entry.schema !== undefined) {
      throw new UserError(`${where}: give either "table" or "schema"+"name", not both`);
    }
    name = parseTableName(entry.table);
  } else if (entry.name !== undefined) {
    name = { schema: entry.schema ?? 'public', name: entry.name };
  } else {
    throw new UserError(`${where}: missing "table" (e.g. "public.users")`);
  }
  if (entry.columns !== undefined && entry.exclude !== undefined) {
    throw new UserError(`${where}: give either "columns" or "exclude", not both`);
  }
  const table: TableConfig = { ...name, format: entry.format ?? 'hash', prefix: entry.prefix ?? prefix };
  if (entry.key !== undefined) table.key = entry.key;
  if (entry.columns !== undefined) table.columns = entry.columns;
  if (entry.exclude !== undefined) table.exclude = entry.exclude;
  if (entry.keyTemplate !== undefined) table.keyTemplate = entry.keyTemplate;
  if (entry.group !== undefined && entry.group !== DEFAULT_GROUP) table.group = entry.group;
  if (entry.ttl !== undefined) table.ttl = entry.ttl;
  if (entry.stream !== undefined) table.stream = { maxLen: entry.stream.maxLen ?? DEFAULT_STREAM_MAX_LEN };
  if (entry.publish !== undefined) table.publish = entry.publish;
  if (entry.filter !== undefined) table.filter = entry.filter;
  return table;
}
