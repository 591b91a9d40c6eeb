/**
 * `pg-redis-mirror init` on a real database: the library function (runInit) and, once, the
 * built CLI in a subprocess (build first: npx tsc -p tsconfig.build.json).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runInit, type InitOptions } from '../src/cli/init.js';
import { DEFAULTS, loadConfig, type Config } from '../src/config/load.js';
import { formatTableName } from '../src/config/table-name.js';
import { describeDatabaseUrl } from '../src/db/errors.js';
import { UserError } from '../src/errors.js';
import { install, uninstall } from '../src/install/install.js';
import { triggerNames } from '../src/install/names.js';
import { createScratch, type Scratch } from './helpers/scratch.js';
import { runCli, type RunResult } from './helpers/cli.js';

const DIST_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/cli/main.js');

let scratch: Scratch;
let counter = 0;
const tempDirs: string[] = [];

/** The odd table: quotes, spaces and a dot in its name, in a schema with the same. */
const ODD = { schema: 'Odd "S" x', name: 'we"ird name.v1' };
const ODD_SQL = `"Odd ""S"" x"."we""ird name.v1"`;
const ODD_DISPLAY = formatTableName(ODD); // "Odd ""S"" x"."we""ird name.v1"

/** Tables init lists, in its order (schema, then name, byte order). */
const WITH_KEY = [ODD_DISPLAY, 'public.measurements', 'public.users', 'sales.order_lines'];

beforeAll(async () => {
  if (!existsSync(DIST_MAIN)) throw new Error(`${DIST_MAIN} is missing: run npx tsc -p tsconfig.build.json first`);
  scratch = await createScratch('init');
  await scratch.pool.query(`
    CREATE TABLE public.users (id int PRIMARY KEY, name text, email text);
    CREATE SCHEMA sales;
    CREATE TABLE sales.order_lines (order_id bigint, line int, "Qty" int, note text, PRIMARY KEY (order_id, line));
    CREATE SCHEMA "Odd ""S"" x";
    CREATE TABLE ${ODD_SQL} ("the key" text PRIMARY KEY, "a, b" int);
    -- no primary key, but a unique index on NOT NULL columns (and one on a nullable column)
    CREATE TABLE public.events (maybe int UNIQUE, event_uuid uuid NOT NULL, payload text);
    CREATE UNIQUE INDEX ON public.events (event_uuid);
    -- no primary key and nothing unique
    CREATE TABLE public.logs (at timestamptz, msg text);
    -- partitioned: the parent is listed (and mirrored with its partitions), its partition is not
    CREATE TABLE public.measurements (id int, day date, v float8, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
    CREATE TABLE public.measurements_2024 PARTITION OF public.measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    CREATE VIEW public.a_view AS SELECT 1 AS id;
  `);
});

afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await scratch?.cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'prm-init-'));
  tempDirs.push(dir);
  return dir;
}

/** The config init reads: this scratch database, default tool schema and prefix. */
function initConfig(extra: Partial<InitOptions['config']> = {}): InitOptions['config'] {
  return { databaseUrl: scratch.databaseUrl, schema: DEFAULTS.schema, prefix: DEFAULTS.prefix, ...extra };
}

function init(cwd: string, options: Partial<InitOptions> = {}): ReturnType<typeof runInit> {
  return runInit({ config: initConfig(), pool: scratch.pool, cwd, ...options });
}

/** The written file loaded as every command loads it, with a tool schema of its own and this file's prefix. */
function loadWritten(path: string): Config {
  return loadConfig({ config: path, databaseUrl: scratch.databaseUrl, schema: `init_${++counter}`, prefix: scratch.prefix }, {});
}

/** Triggers of this install per table (only on the tables themselves, not cloned ones on partitions). */
async function triggersByTable(config: Config): Promise<Map<string, string[]>> {
  const names = Object.values(triggerNames(config.schema));
  const result = await scratch.pool.query<{ schema: string; name: string; triggers: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, array_to_json(array_agg(t.tgname::text ORDER BY t.tgname))::text AS triggers
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND NOT c.relispartition AND t.tgname = ANY ($1) GROUP BY 1, 2`,
    [names],
  );
  return new Map(result.rows.map((r) => [formatTableName(r), JSON.parse(r.triggers) as string[]]));
}

function uncommentEntries(text: string): string {
  return text.replace(/^ {2}# (- table: .*|  key: .*)$/gm, '  $1');
}

describe('init (library)', () => {
  it('writes a YAML starter listing every user table with its key and columns, tables without a primary key commented out', async () => {
    const cwd = tempDir();
    const secretUrl = scratch.databaseUrl.replace('://', '://someone:s3cr3t-pw@');
    const result = await runInit({ config: initConfig({ databaseUrl: secretUrl }), pool: scratch.pool, cwd });
    expect(result.path).toBe(join(cwd, 'pg-redis-mirror.yaml'));
    expect(result.summary).toBe('wrote pg-redis-mirror.yaml: 6 tables, 2 without a primary key (commented out)');
    expect(result.notes).toEqual([]);
    const text = readFileSync(result.path, 'utf8');
    expect(text).toMatch(/^# pg-redis-mirror config/);
    expect(text).toContain(`from ${describeDatabaseUrl(scratch.databaseUrl)}.`);
    expect(text).not.toContain('s3cr3t-pw');
    expect(text).not.toContain('someone');
    expect(text).not.toMatch(/^(databaseUrl|redisUrl):/m);
    expect(text).toMatch(/DATABASE_URL/);
    expect(text).toContain('schema: redis_mirror\nprefix: "pg:"\ntables:\n');
    expect(text).toContain(`  - table: '${ODD_DISPLAY}'\n    # key: "the key"; columns: "the key", "a, b"\n`);
    expect(text).toContain('  - table: public.users\n    # key: id; columns: id, name, email\n');
    expect(text).toContain('  - table: sales.order_lines\n    # key: order_id, line; columns: order_id, line, Qty, note\n');
    expect(text).toContain('  - table: public.measurements\n    # partitioned (its partitions are mirrored with it); key: id, day; columns: id, day, v\n');
    expect(text).toContain(
      '  # public.events has no primary key: add one, or set `key:` to columns that are unique and NOT NULL;\n' +
        '  # the unique index on (event_uuid) qualifies: uncomment this entry to use it.\n' +
        '  # - table: public.events\n' +
        '  #   key: [event_uuid]\n' +
        '  #   # no primary key; columns: maybe, event_uuid, payload\n',
    );
    expect(text).toContain(
      '  # public.logs has no primary key: add one, or set `key:` to columns that are unique and NOT NULL;\n' +
        '  # no unique index on NOT NULL columns exists yet; then uncomment this entry.\n' +
        '  # - table: public.logs\n' +
        '  #   # no primary key; columns: at, msg\n',
    );
    // Neither the partition, the view nor anything of the system schemas.
    expect(text).not.toContain('measurements_2024');
    expect(text).not.toContain('a_view');
    expect(text).not.toMatch(/pg_catalog|information_schema|pg_toast/);
    // Entries in schema, then name order.
    const entries = [...text.matchAll(/^ {2}(?:# )?- table: (.*)$/gm)].map((m) => m[1]);
    expect(entries).toEqual([`'${ODD_DISPLAY}'`, 'public.events', 'public.logs', 'public.measurements', 'public.users', 'sales.order_lines']);
  });

  it('round-trips: the file loads with loadConfig and install puts triggers on every listed table', async () => {
    const cwd = tempDir();
    const { path } = await init(cwd);
    const config = loadWritten(path);
    expect(config.tables.map(formatTableName)).toEqual(WITH_KEY);
    expect(config.tables.find((t) => t.name === ODD.name)).toMatchObject(ODD);
    try {
      const result = await install(config, scratch.pool);
      expect(result.tables.map((t) => [t.table, t.action])).toEqual(WITH_KEY.map((t) => [t, 'create']));
      const triggers = await triggersByTable(config);
      expect([...triggers.keys()].sort()).toEqual([...WITH_KEY].sort());
      for (const t of WITH_KEY) expect(triggers.get(t), t).toHaveLength(5);

      // The tool's own schema is never listed (it holds tables with primary keys now).
      const again = await init(tempDir(), { config: initConfig({ schema: config.schema }) });
      expect(again.starter.listed.map(formatTableName)).toEqual(WITH_KEY);
    } finally {
      await uninstall(config, scratch.pool);
    }
  });

  it('a commented-out table whose unique NOT NULL index is suggested installs once uncommented', async () => {
    const cwd = tempDir();
    const { path } = await init(cwd);
    const uncommented = uncommentEntries(readFileSync(path, 'utf8'));
    // Only the suggestion can be used as is: public.logs has no key to offer.
    const withEvents = uncommented.replace(/^ {2}- table: public\.logs\n/m, '');
    writeFileSync(path, withEvents);
    const config = loadWritten(path);
    expect(config.tables.find((t) => t.name === 'events')?.key).toEqual(['event_uuid']);
    expect(config.tables.some((t) => t.name === 'logs')).toBe(false);
    try {
      await install(config, scratch.pool);
      expect((await triggersByTable(config)).get('public.events')).toHaveLength(5);
    } finally {
      await uninstall(config, scratch.pool);
    }
    // Uncommenting the table without any key gives install's own clear error.
    writeFileSync(path, uncommented);
    await expect(install(loadWritten(path), scratch.pool)).rejects.toThrow(/public\.logs has no primary key; add one, or set "key"/);
  });

  it('refuses to overwrite an existing file without force, and overwrites with it', async () => {
    const cwd = tempDir();
    const path = join(cwd, 'pg-redis-mirror.yaml');
    writeFileSync(path, 'mine\n');
    const refused = init(cwd);
    await expect(refused).rejects.toThrow(UserError);
    await expect(refused).rejects.toThrow('pg-redis-mirror.yaml already exists; pass --force to overwrite it');
    expect(readFileSync(path, 'utf8')).toBe('mine\n');
    const forced = await init(cwd, { force: true });
    expect(forced.summary).toMatch(/^wrote pg-redis-mirror\.yaml: 6 tables/);
    expect(readFileSync(path, 'utf8')).toMatch(/^# pg-redis-mirror config/);
    // A pg-redis-mirror.json next to it would be read first: say so.
    writeFileSync(join(cwd, 'pg-redis-mirror.json'), '{}');
    expect((await init(cwd, { force: true })).notes).toEqual([
      'note: pg-redis-mirror.json in the same directory is read before pg-redis-mirror.yaml; remove it, or pass --config pg-redis-mirror.yaml',
    ]);
  });

  it('writes JSON for a .json output: only tables with a primary key, notes about the others', async () => {
    const cwd = tempDir();
    const result = await init(cwd, { output: 'sub.json' });
    expect(result.summary).toBe('wrote sub.json: 6 tables, 2 without a primary key (left out)');
    expect(result.notes).toEqual([
      'note: public.events has no primary key and was left out; add a primary key, or list it as {"table":"public.events","key":["event_uuid"]} (a unique index on NOT NULL columns)',
      'note: public.logs has no primary key and was left out; add a primary key, or a unique index on NOT NULL columns and list it with "key"',
    ]);
    const data = JSON.parse(readFileSync(join(cwd, 'sub.json'), 'utf8')) as unknown;
    expect(data).toEqual({ schema: 'redis_mirror', prefix: 'pg:', tables: WITH_KEY.map((table) => ({ table })) });
    const config = loadWritten(join(cwd, 'sub.json'));
    try {
      await install(config, scratch.pool);
      expect([...(await triggersByTable(config)).keys()].sort()).toEqual([...WITH_KEY].sort());
    } finally {
      await uninstall(config, scratch.pool);
    }
  });

  it('limits the listing to the given schemas, and names a schema that does not exist', async () => {
    const result = await init(tempDir(), { schemas: ['sales', ODD.schema] });
    expect(result.starter.listed.map(formatTableName)).toEqual([ODD_DISPLAY, 'sales.order_lines']);
    expect(result.summary).toBe('wrote pg-redis-mirror.yaml: 2 tables');
    const dir = tempDir();
    await expect(init(dir, { schemas: ['sales', 'Sales'] })).rejects.toThrow(/schema "Sales" does not exist in .*; check --schema-filter/);
    await expect(init(dir, { schemas: ['pg_catalog'] })).rejects.toThrow(/no tables found in schema "pg_catalog" of .*; nothing written to pg-redis-mirror\.yaml/);
    expect(existsSync(join(dir, 'pg-redis-mirror.yaml'))).toBe(false);
  });
});

function cli(args: string[], cwd: string): Promise<RunResult> {
  return runCli(args, { cwd, env: { DATABASE_URL: scratch.databaseUrl, REDIS_URL: scratch.redisUrl } });
}

const show = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

describe('init (CLI)', () => {
  it('writes pg-redis-mirror.yaml in the current directory, refuses to overwrite it, overwrites with --force', async () => {
    const cwd = tempDir();
    const first = await cli(['init'], cwd);
    expect(first.code, show(first)).toBe(0);
    expect(first.stdout).toBe('wrote pg-redis-mirror.yaml: 6 tables, 2 without a primary key (commented out)\n');
    expect(first.stderr).toBe('');
    const path = join(cwd, 'pg-redis-mirror.yaml');
    const written = readFileSync(path, 'utf8');
    expect(written).toContain('  - table: public.users\n');
    expect(written).toContain('  # - table: public.logs\n');

    // A file that is not even a valid config: init must still refuse, naming the file and the flag.
    writeFileSync(path, 'tables: {not: [valid\n');
    const refused = await cli(['init'], cwd);
    expect(refused.code, show(refused)).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe('pg-redis-mirror: pg-redis-mirror.yaml already exists; pass --force to overwrite it, or --output <file> to write another file\n');
    expect(readFileSync(path, 'utf8')).toBe('tables: {not: [valid\n');

    const forced = await cli(['init', '--force'], cwd);
    expect(forced.code, show(forced)).toBe(0);
    expect(forced.stdout).toBe('wrote pg-redis-mirror.yaml: 6 tables, 2 without a primary key (commented out)\n');
    expect(readFileSync(path, 'utf8')).toBe(written);

    // The written file is what the other commands read by default.
    const sql = await cli(['sql', 'install', '--schema', `init_cli_${++counter}`], cwd);
    expect(sql.code, show(sql)).toBe(0);
    for (const t of ['public.users', 'sales.order_lines']) expect(sql.stdout).toContain(`-- ${t}: capture changed keys`);

    const json = await cli(['init', '--output', 'only-sales.json', '--schema-filter', 'sales'], cwd);
    expect(json.code, show(json)).toBe(0);
    expect(json.stdout).toBe('wrote only-sales.json: 1 table\n');
    expect(JSON.parse(readFileSync(join(cwd, 'only-sales.json'), 'utf8'))).toEqual({ schema: 'redis_mirror', prefix: 'pg:', tables: [{ table: 'sales.order_lines' }] });

    // JSON cannot carry comments: the tables left out are notes on stderr.
    const all = await cli(['init', '-o', 'all.json'], cwd);
    expect(all.code, show(all)).toBe(0);
    expect(all.stdout).toBe('wrote all.json: 6 tables, 2 without a primary key (left out)\n');
    expect(all.stderr.split('\n')).toEqual([
      expect.stringMatching(/^note: public\.events has no primary key and was left out; .*"key":\["event_uuid"\]/),
      expect.stringMatching(/^note: public\.logs has no primary key and was left out/),
      '',
    ]);
  });

  it('writes the file named by --config when there is no --output, and other commands read it from there', async () => {
    const cwd = tempDir();
    const written = await cli(['init', '--config', 'custom.yml', '--schema-filter', 'sales', '--prefix', 'app:'], cwd);
    expect(written.code, show(written)).toBe(0);
    expect(written.stdout).toBe('wrote custom.yml: 1 table\n');
    expect(readFileSync(join(cwd, 'custom.yml'), 'utf8')).toContain('prefix: "app:"\ntables:\n  - table: sales.order_lines\n');
    const sql = await cli(['sql', 'install', '--config', 'custom.yml', '--schema', `init_cli_${++counter}`], cwd);
    expect(sql.code, show(sql)).toBe(0);
    expect(sql.stdout).toContain('-- sales.order_lines: capture changed keys');
    expect(sql.stdout).not.toContain('public.users');
  });
});
