import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml, stringify } from 'yaml';
import { formatTableName, type TableName } from './table-name.js';

/** What a starter config needs to know about a table (a catalog/list.ts ListedTable fits). */
export interface StarterTable extends TableName {
  /** In column order. */
  columns: readonly { name: string; notNull: boolean }[];
  primaryKey: readonly string[] | null;
  /** Column sets of unique indexes without predicate or expressions. */
  uniqueKeys: readonly (readonly string[])[];
  kind?: 'table' | 'partitioned table';
}

export type StarterFormat = 'yaml' | 'json';

export interface StarterOptions {
  format: StarterFormat;
  /** The tool's schema and the key prefix, written so the file says what install will use. */
  schema: string;
  prefix: string;
  /** Where the tables came from (host:port/database, no credentials), for the header comment. */
  source?: string;
}

export interface StarterConfig {
  text: string;
  /** Tables with a primary key: active entries. */
  listed: StarterTable[];
  /** Tables without a primary key: commented out (YAML) or left out (JSON). */
  withoutKey: StarterTable[];
  /** Lines for stderr (JSON only: what was left out and why; YAML says it in comments). */
  notes: string[];
}

/** The format a file name asks for: JSON for `.json` (as loadConfig reads it), YAML otherwise. */
export function starterFormatFor(path: string): StarterFormat {
  return path.endsWith('.json') ? 'json' : 'yaml';
}

/**
 * A first unique index whose columns are all NOT NULL: what `key` could be set to for a table
 * without a primary key (the fewest columns first).
 */
export function suggestedKey(table: StarterTable): string[] | null {
  const notNull = new Set(table.columns.filter((c) => c.notNull).map((c) => c.name));
  const candidates = table.uniqueKeys.filter((k) => k.length > 0 && k.every((c) => notNull.has(c)));
  const best = [...candidates].sort((a, b) => a.length - b.length)[0];
  return best === undefined ? null : [...best];
}

/**
 * Renders a starter config listing these tables. YAML carries comments: a header explaining
 * the fields, each table's key and columns, and tables without a primary key commented out
 * with what to do. JSON cannot: it lists only the tables with a primary key and returns notes
 * about the others. Either way the text loads with loadConfig() as is.
 */
export function renderStarterConfig(tables: readonly StarterTable[], options: StarterOptions): StarterConfig {
  const listed = tables.filter((t) => t.primaryKey !== null);
  const withoutKey = tables.filter((t) => t.primaryKey === null);
  if (options.format === 'json') {
    const data = { schema: options.schema, prefix: options.prefix, tables: listed.map((t) => ({ table: formatTableName(t) })) };
    return { text: `${JSON.stringify(data, null, 2)}\n`, listed, withoutKey, notes: withoutKey.map(jsonNote) };
  }
  const lines = [...header(options), '', `schema: ${scalar(options.schema)}`, `prefix: ${scalar(options.prefix)}`];
  lines.push(listed.length === 0 ? 'tables: []' : 'tables:');
  for (const table of tables) {
    lines.push(...(table.primaryKey === null ? commentedEntry(table) : entry(table)));
  }
  return { text: `${lines.join('\n')}\n`, listed, withoutKey, notes: [] };
}

/** The line `init` prints: `wrote pg-redis-mirror.yaml: 3 tables, 1 without a primary key (commented out)`. */
export function starterSummary(display: string, config: StarterConfig, format: StarterFormat): string {
  const total = config.listed.length + config.withoutKey.length;
  const out = format === 'yaml' ? 'commented out' : 'left out';
  let line = `wrote ${display}: ${total} ${total === 1 ? 'table' : 'tables'}`;
  if (config.withoutKey.length > 0) line += `, ${config.withoutKey.length} without a primary key (${out})`;
  return line;
}

function header(options: StarterOptions): string[] {
  const from = options.source === undefined ? '' : ` from ${commentText(options.source)}`;
  return [
    `# pg-redis-mirror config: a starter written by \`pg-redis-mirror init\`${from}.`,
    '# Review it, delete the entries of tables you do not want mirrored, then run',
    '# `pg-redis-mirror install` (and `pg-redis-mirror listen`).',
    '#',
    '# No connection URL is written here, so the file holds no secret: set DATABASE_URL and',
    '# REDIS_URL in the environment (or pass --database-url / --redis-url).',
    '#',
    '# schema       PostgreSQL schema the tool creates for its journal, registry and trigger functions',
    '# prefix       prepended to every Redis key: <prefix><schema>.<table>:<key values>',
    '# tables       the tables to mirror; an entry can have:',
    '#   table        schema.name, exact case; double-quote a part that contains a dot or a quote',
    '#   format       hash (default: one field per column) or json (one string per row)',
    '#   columns      mirror only these columns (or `exclude`: all columns but these)',
    '#   key          for a table without a primary key: columns that are unique and NOT NULL',
    '#   keyTemplate  key layout after the prefix, e.g. user:{id}; every key column once',
    '#   prefix       overrides the global prefix for this table',
    '# The comment under each entry lists its key (the primary key) and its columns.',
    '# Also possible: batchSize (keys per batch, default 2000), pollIntervalMs (default 1000).',
  ];
}

function entry(table: StarterTable): string[] {
  return [`  - table: ${scalar(formatTableName(table))}`, `    ${describe(table)}`];
}

function commentedEntry(table: StarterTable): string[] {
  const key = suggestedKey(table);
  const lines = [`  # ${commentText(formatTableName(table))} has no primary key: add one, or set \`key:\` to columns that are unique and NOT NULL;`];
  if (key === null) lines.push('  # no unique index on NOT NULL columns exists yet; then uncomment this entry.');
  else lines.push(`  # the unique index on (${key.map(commentName).join(', ')}) qualifies: uncomment this entry to use it.`);
  lines.push(`  # - table: ${scalar(formatTableName(table))}`);
  if (key !== null) lines.push(`  #   key: ${flow(key)}`);
  lines.push(`  #   ${describe(table)}`);
  return lines;
}

/** `# key: id; columns: id, name, email`, or `# no primary key; columns: ...` (names quoted where they need it). */
function describe(table: StarterTable): string {
  const key = table.primaryKey === null ? 'no primary key' : `key: ${table.primaryKey.map(commentName).join(', ')}`;
  const columns = table.columns.length === 0 ? '(none)' : table.columns.map((c) => commentName(c.name)).join(', ');
  return `# ${table.kind === 'partitioned table' ? 'partitioned (its partitions are mirrored with it); ' : ''}${key}; columns: ${columns}`;
}

function jsonNote(table: StarterTable): string {
  const name = formatTableName(table);
  const key = suggestedKey(table);
  const fix =
    key === null
      ? `add a primary key, or a unique index on NOT NULL columns and list it with "key"`
      : `add a primary key, or list it as ${JSON.stringify({ table: name, key })} (a unique index on NOT NULL columns)`;
  return `note: ${commentText(name)} has no primary key and was left out; ${fix}`;
}

const YAML_OPTIONS = { lineWidth: 0, blockQuote: false, flowCollectionPadding: false } as const;

/** One YAML scalar on one line, quoted as needed, that parses back to exactly this string. */
function scalar(value: string): string {
  return oneLine(value, stringify(value, YAML_OPTIONS));
}

/** A YAML flow sequence on one line, e.g. `[a, "b c"]`, that parses back to exactly these strings. */
function flow(values: readonly string[]): string {
  return oneLine(values, stringify(values, { ...YAML_OPTIONS, collectionStyle: 'flow' }));
}

/**
 * The yaml library's rendering when it is one line of safe characters that parses back to the
 * value; otherwise JSON (whose escapes are YAML's too) with line separators and controls escaped,
 * which are valid in some YAML scalars but not in every editor or parser.
 */
function oneLine(value: string | readonly string[], rendered: string): string {
  const text = rendered.trimEnd();
  if (!text.includes('\n') && !UNSAFE.test(text) && isDeepStrictEqual(parseYaml(`v: ${text}`), { v: value })) return text;
  return escapeUnsafe(JSON.stringify(value));
}

/** A name inside a comment: bare when plainly a word, else double-quoted with escapes. */
function commentName(name: string): string {
  return /^[\p{L}\p{N}_$]+$/u.test(name) ? name : commentText(JSON.stringify(name));
}

/**
 * Text safe inside a YAML comment (or a one-line note): no line break, which would end the
 * comment and turn the rest into YAML, and no character YAML does not allow in a file.
 */
function commentText(text: string): string {
  return escapeUnsafe(text);
}

const UNSAFE = /[\p{Cc}\u2028\u2029\uFEFF\uFFFE\uFFFF]/u;

function escapeUnsafe(text: string): string {
  return text.replace(new RegExp(UNSAFE.source, 'gu'), (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
