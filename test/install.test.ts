import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config, TableConfig } from '../src/config/load.js';
import { install, renderPlanned, uninstall } from '../src/install/install.js';
import { createScratch, expectMirrorClean, settle, startDaemon, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('install');
});
afterAll(async () => {
  await scratch.cleanup();
});

/** Every schema, relation, function and trigger, with the xmin of its catalog row (changes on any rewrite). */
async function catalog(): Promise<string[]> {
  const result = await scratch.pool.query<{ o: string }>(`
    SELECT 'schema ' || nspname || ' ' || xmin AS o FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
    UNION ALL SELECT 'rel ' || c.oid::regclass::text || ' ' || c.xmin FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    UNION ALL SELECT 'proc ' || p.oid::regprocedure::text || ' ' || p.xmin FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text || ' ' || tgenabled::text || ' ' || xmin FROM pg_trigger WHERE NOT tgisinternal
    ORDER BY 1`);
  return result.rows.map((r) => r.o);
}

/** The same without xmin: which objects exist (adding triggers rewrites the table's pg_class row). */
async function objects(): Promise<string[]> {
  return (await catalog()).map((o) => o.replace(/ \d+$/, ''));
}

function freshConfig(tables: Parameters<Scratch['config']>[0]): Config {
  return scratch.config(tables, { schema: `inst_${++counter}` });
}

describe('install', () => {
  it('creates the schema and triggers, runs exactly what `sql install` prints, and a second run changes nothing', async () => {
    await scratch.pool.query(`CREATE TABLE a1 (id int PRIMARY KEY, v text); CREATE SCHEMA other; CREATE TABLE other.b1 (x text, y int, PRIMARY KEY (x, y))`);
    const config = freshConfig(['public.a1', 'other.b1']);
    const before = await objects();
    const printed = await renderPlanned(config, 'install', scratch.pool);
    const first = await install(config, scratch.pool);
    expect(first.script).toBe(printed.script);
    expect(first.script).toMatch(/^BEGIN;\n/);
    expect(first.script).toMatch(/COMMIT;\n$/);
    expect(first.schemaAction).toBe('create');
    expect(first.tables.map((t) => t.action)).toEqual(['create', 'create']);
    const installed = await catalog();
    const triggers = installed.filter((o) => o.startsWith(`trigger ${config.schema}_`));
    expect(triggers).toHaveLength(10);
    expect(installed).toContain(`schema ${config.schema} ${installed.find((o) => o.startsWith(`schema ${config.schema} `))!.split(' ')[2]}`);

    const second = await install(config, scratch.pool);
    expect(second.body).toBe('');
    expect(second.tables.map((t) => t.action)).toEqual(['unchanged', 'unchanged']);
    expect(await catalog()).toEqual(installed);
    expect((await renderPlanned(config, 'install', scratch.pool)).script).toMatch(/^-- nothing to do/);

    await uninstall(config, scratch.pool);
    expect(await objects()).toEqual(before);
  });

  it('compresses journaled keys with lz4 where the server has it (cheaper for big statements than pglz)', async () => {
    await scratch.pool.query(`CREATE TABLE a0 (id int PRIMARY KEY)`);
    const config = freshConfig(['public.a0']);
    await install(config, scratch.pool);
    const want = await scratch.pool.query<{ c: string }>(`SELECT CASE WHEN 'lz4' = ANY(enumvals) THEN 'l' ELSE '' END AS c FROM pg_settings WHERE name = 'default_toast_compression'`);
    const column = await scratch.pool.query<{ c: string }>(
      `SELECT attcompression AS c FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'keys'`,
      [`${config.schema}.journal`],
    );
    expect(column.rows[0]?.c).toBe(want.rows[0]?.c);
    // A big statement's chunks are written and claimed as before.
    await scratch.pool.query(`INSERT INTO a0 SELECT generate_series(1, 2500)`);
    const chunks = await scratch.pool.query<{ n: string; rows: string }>(`SELECT count(*) AS rows, sum(array_length(keys, 1)) AS n FROM ${config.schema}.journal`);
    expect(chunks.rows[0]).toEqual({ rows: '3', n: '2500' });
    await uninstall(config, scratch.pool);
  });

  it('updates an install when the config or the triggers changed, and removes tables no longer configured', async () => {
    await scratch.pool.query(`CREATE TABLE a2 (id int PRIMARY KEY, v text, secret text); CREATE TABLE b2 (id int PRIMARY KEY)`);
    const config = freshConfig(['public.a2', 'public.b2']);
    await install(config, scratch.pool);

    const changed = { ...config, tables: config.tables.map((t) => (t.name === 'a2' ? { ...t, exclude: ['secret'] } : t)) };
    const update = await install(changed, scratch.pool);
    expect(update.tables).toContainEqual({ table: 'public.a2', action: 'update', reason: 'options changed' });
    expect(update.tables).toContainEqual({ table: 'public.b2', action: 'unchanged' });

    await scratch.pool.query(`DROP TRIGGER ${config.schema}_delete ON a2`);
    expect((await install(changed, scratch.pool)).tables).toContainEqual({ table: 'public.a2', action: 'update', reason: 'trigger dropped' });
    await scratch.pool.query(`ALTER TABLE b2 DISABLE TRIGGER ${config.schema}_insert`);
    expect((await install(changed, scratch.pool)).tables).toContainEqual({ table: 'public.b2', action: 'update', reason: 'trigger disabled' });
    const enabled = await scratch.pool.query(`SELECT tgenabled FROM pg_trigger WHERE tgname = $1`, [`${config.schema}_insert`]);
    expect(enabled.rows.map((r) => r.tgenabled)).toEqual(['O', 'O']);

    // A new release's capture function (here: a stale hash) is installed without forgetting the last copy.
    await scratch.pool.query(`UPDATE ${config.schema}.tables SET spec_hash = 'from an older release', synced_at = now()`);
    expect((await install(changed, scratch.pool)).tables).toContainEqual({ table: 'public.a2', action: 'update', reason: 'capture function upgraded' });
    const synced = await scratch.pool.query(`SELECT count(*) AS n FROM ${config.schema}.tables WHERE synced_at IS NOT NULL`);
    expect(synced.rows[0].n).toBe('2');

    const onlyA = { ...changed, tables: changed.tables.filter((t) => t.name === 'a2') };
    const removal = await install(onlyA, scratch.pool);
    expect(removal.tables).toContainEqual({ table: 'public.b2', action: 'remove' });
    const left = await scratch.pool.query(`SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = 'b2'::regclass AND NOT tgisinternal`);
    expect(left.rows[0].n).toBe('0');
    await uninstall(config, scratch.pool);
  });

  it('removes only what it created: an object someone put in its schema stops the uninstall, and nothing is half-removed', async () => {
    await scratch.pool.query(`CREATE TABLE a3 (id int PRIMARY KEY)`);
    const config = freshConfig(['public.a3']);
    await install(config, scratch.pool);
    await scratch.pool.query(`CREATE TABLE ${config.schema}.user_stuff (x int)`);
    const installed = await catalog();
    await expect(uninstall(config, scratch.pool)).rejects.toThrow(/cannot drop schema .* other objects depend on it; pg-redis-mirror removes only what it created: move or drop those objects, then run uninstall again/);
    expect(await catalog()).toEqual(installed);
    await scratch.pool.query(`DROP TABLE ${config.schema}.user_stuff`);
    await uninstall(config, scratch.pool);
    expect((await catalog()).some((o) => o.includes(config.schema))).toBe(false);
  });

  it('uninstalls cleanly after a mirrored table was dropped or renamed', async () => {
    await scratch.pool.query(`CREATE TABLE a4 (id int PRIMARY KEY); CREATE TABLE b4 (id int PRIMARY KEY)`);
    const before = await objects();
    const config = freshConfig(['public.a4', 'public.b4']);
    await install(config, scratch.pool);
    await scratch.pool.query(`ALTER TABLE a4 RENAME TO a4_renamed; DROP TABLE b4`);
    await uninstall(config, scratch.pool);
    const after = await objects();
    expect(after.some((o) => o.includes(config.schema))).toBe(false);
    expect(after).toEqual(before.filter((o) => !o.includes('b4')).map((o) => (o === 'rel a4' ? 'rel a4_renamed' : o)).sort());
  });
});

describe('install refuses bad input with a clear message and changes nothing', () => {
  it.each([
    ['a table that does not exist', ['public.missing'], /table public\.missing does not exist/],
    ['a name in the wrong case', ['public.MixedCase'], /did you mean public\.mixedcase/],
    ['a table without a primary key', ['public.nokey'], /has no primary key; add one, or set "key"/],
    ['a view', ['public.a_view'], /is not a table/],
    ['a partition', ['public.parted_2024'], /public\.parted_2024 is a partition of public\.parted; mirror public\.parted instead/],
  ])('%s', async (_what, tables, message) => {
    await scratch.pool.query(`CREATE TABLE IF NOT EXISTS nokey (a int, b int); CREATE TABLE IF NOT EXISTS mixedcase (id int PRIMARY KEY);
      CREATE OR REPLACE VIEW a_view AS SELECT 1 AS id;
      CREATE TABLE IF NOT EXISTS parted (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
      CREATE TABLE IF NOT EXISTS parted_2024 PARTITION OF parted FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
    const config = freshConfig(tables);
    const before = await catalog();
    await expect(install(config, scratch.pool)).rejects.toThrow(message);
    expect(await catalog()).toEqual(before);
  });

  it('checks key, columns and exclude against the table', async () => {
    await scratch.pool.query(`CREATE TABLE k5 (a int NOT NULL, b int, c text); CREATE UNIQUE INDEX ON k5 (a)`);
    const bad: [Partial<TableConfig> & { table: string }, RegExp][] = [
      [{ table: 'public.k5', key: ['b'] }, /key column "b" must be NOT NULL/],
      [{ table: 'public.k5', key: ['zz'] }, /"key" names column "zz", which does not exist/],
      [{ table: 'public.k5', key: ['a'], columns: ['a', 'nope'] }, /"columns" names column "nope"/],
      [{ table: 'public.k5', key: ['a'], exclude: ['nope'] }, /"exclude" names column "nope"/],
      [{ table: 'public.k5', key: ['a'], keyTemplate: 'k:{b}' }, /\{b\} is not a key column/],
    ];
    for (const [table, message] of bad) {
      await expect(install(freshConfig([table]), scratch.pool)).rejects.toThrow(message);
    }
    await scratch.pool.query(`ALTER TABLE k5 ALTER b SET NOT NULL`);
    await expect(install(freshConfig([{ table: 'public.k5', key: ['b'] }]), scratch.pool)).rejects.toThrow(/not backed by a unique index/);
    // A unique NOT NULL key stands in for a primary key.
    const config = freshConfig([{ table: 'public.k5', key: ['a'] }]);
    const daemon = await (async () => {
      await install(config, scratch.pool);
      return startDaemon(config);
    })();
    try {
      await scratch.pool.query(`INSERT INTO k5 VALUES (1, 2, 'x')`);
      await settle(scratch, config);
      expect(await scratch.redis.hgetall(`${scratch.prefix}public.k5:1`)).toEqual({ a: '1', b: '2', c: 'x' });
    } finally {
      await daemon.stop();
    }
    await uninstall(config, scratch.pool);
  });
});

describe('names are only ever names', () => {
  it('mirrors tables whose schema, table, column and tool-schema names hold quotes, spaces, capitals, unicode and SQL', async () => {
    const schema = 'My "Schema"';
    const table = 'x"; DROP TABLE y; --';
    await scratch.pool.query(`CREATE TABLE y (id int PRIMARY KEY)`);
    await scratch.pool.query(`CREATE SCHEMA "My ""Schema"""; CREATE TABLE "My ""Schema"""."x""; DROP TABLE y; --" ("Key Col" text PRIMARY KEY, "naïve $$ é" text, "Mixed" int)`);
    const config = scratch.config([{ table: 'x', schema, name: table } as never], { schema: `Tool "Schema" $body$ ${++counter}` });
    config.tables = [{ schema, name: table, format: 'hash', prefix: scratch.prefix }];
    await install(config, scratch.pool);
    const daemon = await startDaemon(config);
    try {
      await scratch.pool.query(`INSERT INTO "My ""Schema"""."x""; DROP TABLE y; --" VALUES ('k:1', 'v''"', 7)`);
      await settle(scratch, config);
      const key = `${scratch.prefix}My "Schema".x"; DROP TABLE y; --:k\\:1`;
      expect(await scratch.redis.hgetall(key)).toEqual({ 'Key Col': 'k:1', 'naïve $$ é': 'v\'"', Mixed: '7' });
      await expectMirrorClean(scratch, config);
    } finally {
      await daemon.stop();
    }
    expect((await scratch.pool.query(`SELECT to_regclass('public.y') IS NOT NULL AS ok`)).rows[0].ok).toBe('t');
    await uninstall(config, scratch.pool);
  });

  it('lets application roles without any privilege on the tool schema write to mirrored tables', async () => {
    await scratch.pool.query(`CREATE TABLE app_t (id int PRIMARY KEY, v int)`);
    const config = freshConfig(['public.app_t']);
    await install(config, scratch.pool);
    const role = `prm_app_${scratch.database.slice(-8)}`;
    await scratch.pool.query(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role}; GRANT INSERT, UPDATE, DELETE, SELECT, TRUNCATE ON app_t TO ${role}`);
    const client = await scratch.pool.connect();
    try {
      await client.query(`SET ROLE ${role}`);
      await client.query(`INSERT INTO app_t VALUES (1, 1); UPDATE app_t SET id = 2; DELETE FROM app_t; TRUNCATE app_t`);
      await expect(client.query(`INSERT INTO ${config.schema}.journal (rel, op) VALUES (1, 't')`)).rejects.toThrow(/permission denied/);

      await client.query('RESET ROLE');
    } finally {
      client.release();
    }
    const journal = await scratch.pool.query(`SELECT op FROM ${config.schema}.journal ORDER BY id`);
    expect(journal.rows.map((r) => r.op)).toEqual(['k', 'k', 'k', 'k', 't']);
    await uninstall(config, scratch.pool);
    await scratch.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
  });
});
