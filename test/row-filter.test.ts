import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Config, TableConfig } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { createDb } from '../src/db/kysely.js';
import { install } from '../src/install/install.js';
import { renderDaemonGrants } from '../src/install/grants.js';
import { syncTables } from '../src/sync/sync.js';
import { verifyMirror } from '../src/verify/verify.js';
import { UserError } from '../src/errors.js';
import { createPool } from '../src/db/connect.js';
import { quoteIdent } from '../src/sql/quote.js';
import { runCli } from './helpers/cli.js';
import { createScratch, expectMirrorClean, installAndStart, settle, startDaemon, verify, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
let daemons: MirrorDaemon[] = [];
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('filter');
});
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
});
afterAll(async () => {
  await scratch.cleanup();
});

type Entry = Partial<TableConfig> & { table: string };

function configFor(tables: Entry[]): Config {
  return scratch.config(tables, { schema: `filter_${++counter}` });
}

async function mirror(ddl: string, tables: Entry[]): Promise<Config> {
  await scratch.pool.query(ddl);
  const config = configFor(tables);
  daemons.push(await installAndStart(scratch, config));
  return config;
}

const key = (table: string, ...values: string[]): string => `${scratch.prefix}${table}:${values.join(':')}`;
const keysOf = async (table: string): Promise<string[]> => (await scratch.redis.keys(`${scratch.prefix}${table}:*`)).sort();

describe('row filters', () => {
  it('mirrors matching rows only; a row leaves Redis when it stops matching and comes back when it matches again', async () => {
    const config = await mirror(
      `CREATE TABLE users (id int PRIMARY KEY, status text NOT NULL, deleted_at timestamptz, name text)`,
      [{ table: 'public.users', filter: "status = 'active' AND deleted_at IS NULL" }],
    );
    await scratch.pool.query(`INSERT INTO users VALUES (1, 'active', NULL, 'a'), (2, 'inactive', NULL, 'b'), (3, 'active', now(), 'c'), (4, 'active', NULL, 'd')`);
    await settle(scratch, config);
    expect(await keysOf('public.users')).toEqual([key('public.users', '1'), key('public.users', '4')]);
    expect(await scratch.redis.hgetall(key('public.users', '1'))).toEqual({ id: '1', status: 'active', name: 'a' });

    // Out: the filtered column changes; in: it changes back, or another row starts matching.
    await scratch.pool.query(`UPDATE users SET status = 'inactive' WHERE id = 1`);
    await scratch.pool.query(`UPDATE users SET status = 'active' WHERE id = 2`);
    await scratch.pool.query(`UPDATE users SET deleted_at = NULL WHERE id = 3`);
    await scratch.pool.query(`UPDATE users SET deleted_at = now(), name = 'gone' WHERE id = 4`);
    await settle(scratch, config);
    expect(await keysOf('public.users')).toEqual([key('public.users', '2'), key('public.users', '3')]);
    await expectMirrorClean(scratch, config);

    await scratch.pool.query(`UPDATE users SET status = 'active' WHERE id = 1`);
    // A key change of a row that stops matching in the same statement: both keys go.
    await scratch.pool.query(`UPDATE users SET id = 30, status = 'banned' WHERE id = 3`);
    // A key change of a matching row: the old key goes, the new one comes.
    await scratch.pool.query(`UPDATE users SET id = 20 WHERE id = 2`);
    await scratch.pool.query(`DELETE FROM users WHERE id = 1`);
    await scratch.pool.query(`INSERT INTO users VALUES (5, 'active', NULL, 'e')`);
    await settle(scratch, config);
    expect(await keysOf('public.users')).toEqual([key('public.users', '20'), key('public.users', '5')]);
    const reports = await expectMirrorClean(scratch, config);
    expect(reports[0]!.rows).toBe(2);
  });

  it('stores the filter as PostgreSQL printed it, with the columns it reads', async () => {
    await scratch.pool.query(`CREATE TABLE printed (id int PRIMARY KEY, v int)`);
    const config = configFor([{ table: 'public.printed', filter: 'v > 1 -- a trailing comment' }]);
    await install(config, scratch.pool);
    const { rows } = await scratch.pool.query<{ spec: string }>(`SELECT spec FROM ${config.schema}.tables`);
    expect(JSON.parse(rows[0]!.spec)).toMatchObject({ filter: '(v > 1)', filterColumns: ['v'] });

    // Names outside pg_catalog come out qualified, constants in the daemon's settings: the
    // daemon's session may have another search_path, DateStyle or TimeZone than install's.
    await scratch.pool.query(`CREATE SCHEMA app; CREATE TYPE app.mood AS ENUM ('ok', 'sad');
      CREATE FUNCTION app.is_even(int) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT $1 % 2 = 0';
      CREATE TABLE app.moods (id int PRIMARY KEY, mood app.mood, at timestamptz)`);
    const pool = new pg.Pool({ connectionString: scratch.databaseUrl, options: '-c search_path=app,public -c DateStyle=SQL,DMY -c TimeZone=Asia/Tokyo', max: 1 });
    const qualified = configFor([{ table: 'app.moods', filter: `mood = 'ok' AND is_even(id) AND at < '02/01/2024 09:00'` }]);
    try {
      await install(qualified, pool);
    } finally {
      await pool.end();
    }
    const spec = await scratch.pool.query<{ spec: string }>(`SELECT spec FROM ${qualified.schema}.tables`);
    expect(JSON.parse(spec.rows[0]!.spec)).toMatchObject({
      filter: `((mood = 'ok'::app.mood) AND app.is_even(id) AND (at < '2024-01-02 00:00:00+00'::timestamp with time zone))`,
      filterColumns: ['id', 'mood', 'at'],
    });
    await scratch.pool.query(`INSERT INTO app.moods VALUES (2, 'ok', '2024-01-01'), (4, 'ok', '2024-01-03'), (6, 'sad', '2024-01-01'), (7, 'ok', '2024-01-01')`);
    await syncTables(scratch.pool, scratch.redis, { schema: qualified.schema });
    expect(await keysOf('app.moods')).toEqual([key('app.moods', '2')]);
    await expectMirrorClean(scratch, qualified);
  });

  it('handles quotes, backslashes and unicode in literals, and json format', async () => {
    const config = await mirror(
      `CREATE TABLE notes (id int PRIMARY KEY, tag text, body text)`,
      [{ table: 'public.notes', format: 'json', filter: `tag IN ('it''s', 'café ☕', 'back\\slash', '日本') OR body LIKE '%"%'` }],
    );
    await scratch.pool.query(
      `INSERT INTO notes VALUES (1, 'it''s', 'x'), (2, 'café ☕', 'y'), (3, 'back\\slash', 'z'), (4, '日本', 'w'), (5, 'cafe', 'has "quote"'), (6, 'its', 'no'), (7, 'cafe ☕', 'no')`,
    );
    await settle(scratch, config);
    expect(await keysOf('public.notes')).toEqual(['1', '2', '3', '4', '5'].map((id) => key('public.notes', id)));
    expect(JSON.parse((await scratch.redis.get(key('public.notes', '2')))!)).toEqual({ id: 2, tag: 'café ☕', body: 'y' });
    await scratch.pool.query(`UPDATE notes SET tag = 'it''s' WHERE id = 6`);
    await scratch.pool.query(`UPDATE notes SET tag = 'other' WHERE id = 4`);
    await settle(scratch, config);
    expect(await scratch.redis.exists(key('public.notes', '6'))).toBe(1);
    expect(await scratch.redis.exists(key('public.notes', '4'))).toBe(0);
    await expectMirrorClean(scratch, config);
  });

  it('filters a composite-key table, on an excluded column whose name needs quoting and clashes with the statement\'s own names', async () => {
    // "rel" and "k1" are also column names of the daemon's claim statement: the filter must
    // still read the table's.
    const config = await mirror(
      `CREATE TABLE "Comp" (tenant text, id int, "Is Live" boolean NOT NULL, rel int, k1 int, v text, PRIMARY KEY (tenant, id))`,
      [{ table: 'public.Comp', exclude: ['Is Live', 'rel'], filter: `"Is Live" AND rel IS DISTINCT FROM 0 AND k1 >= 0` }],
    );
    await scratch.pool.query(`INSERT INTO "Comp" SELECT 't' || (g % 3), g, g % 2 = 0, g % 5, g % 7, 'v' || g FROM generate_series(1, 60) g`);
    await settle(scratch, config);
    const expected = Number((await scratch.pool.query(`SELECT count(*) AS n FROM "Comp" WHERE "Is Live" AND rel <> 0`)).rows[0].n);
    expect((await keysOf('public.Comp')).length).toBe(expected);
    expect(await scratch.redis.hgetall(key('public.Comp', 't2', '2'))).toEqual({ tenant: 't2', id: '2', k1: '2', v: 'v2' });
    await scratch.pool.query(`UPDATE "Comp" SET "Is Live" = NOT "Is Live" WHERE id % 3 = 0`);
    await scratch.pool.query(`UPDATE "Comp" SET tenant = 'moved' WHERE id BETWEEN 10 AND 20`);
    await scratch.pool.query(`UPDATE "Comp" SET rel = 0 WHERE id % 4 = 0`);
    await scratch.pool.query(`DELETE FROM "Comp" WHERE id > 50`);
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
  });

  it('copies only matching rows, and verify reports keys of non-matching rows as extra', async () => {
    await scratch.pool.query(`CREATE TABLE copied (id int PRIMARY KEY, ok boolean NOT NULL)`);
    await scratch.pool.query(`INSERT INTO copied SELECT g, g % 3 = 0 FROM generate_series(1, 3000) g`);
    const config = configFor([{ table: 'public.copied', filter: 'ok' }]);
    await install(config, scratch.pool);
    const [copy] = await syncTables(scratch.pool, scratch.redis, { schema: config.schema, pageSize: 250 });
    expect(copy!.rows).toBe(1000);
    expect((await keysOf('public.copied')).length).toBe(1000);
    await expectMirrorClean(scratch, config);

    // A key no matching row produces: a leftover of a row that stopped matching while nothing
    // ran, or of an older, wider filter.
    await scratch.redis.hset(key('public.copied', '1'), 'id', '1', 'ok', 'f');
    await scratch.redis.del(key('public.copied', '3'));
    const [report] = await verify(scratch, config);
    expect(report).toMatchObject({ rows: 1000, missing: 1, extra: 1, samples: { missing: [key('public.copied', '3')], extra: [key('public.copied', '1')] } });
    await verifyMirror(scratch.pool, scratch.redis, { schema: config.schema, repair: true });
    await expectMirrorClean(scratch, config);
  });

  it('a changed filter marks the table for copying; sync then verify --repair leave exactly the new filter\'s rows', async () => {
    await scratch.pool.query(`CREATE TABLE refilter (id int PRIMARY KEY, grp int NOT NULL)`);
    await scratch.pool.query(`INSERT INTO refilter SELECT g, g % 4 FROM generate_series(1, 400) g`);
    const config = configFor([{ table: 'public.refilter', filter: 'grp IN (0, 1)' }]);
    await install(config, scratch.pool);
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
    await install(config, scratch.pool);
    const unchanged = await scratch.pool.query(`SELECT synced_at FROM ${config.schema}.tables`);
    expect(unchanged.rows[0].synced_at).not.toBeNull();

    config.tables[0]!.filter = 'grp IN (1, 2)';
    const result = await install(config, scratch.pool);
    expect(result.tables).toEqual([{ table: 'public.refilter', action: 'update', reason: 'options changed' }]);
    const marked = await scratch.pool.query(`SELECT synced_at FROM ${config.schema}.tables`);
    expect(marked.rows[0].synced_at).toBeNull();
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema, onlyNeverCopied: true });
    const [before] = await verify(scratch, config);
    expect(before).toMatchObject({ rows: 200, missing: 0, stale: 0, extra: 100 });
    await verifyMirror(scratch.pool, scratch.redis, { schema: config.schema, repair: true });
    await expectMirrorClean(scratch, config);
    expect((await keysOf('public.refilter')).length).toBe(200);
  });

  it('stays exact under a randomized workload', async () => {
    const config = await mirror(
      `CREATE TABLE rnd (id int PRIMARY KEY, grp int NOT NULL, state text, v int)`,
      [{ table: 'public.rnd', filter: `grp % 3 <> 0 AND coalesce(state, '') <> 'hidden'` }],
    );
    let seed = 20240607;
    const r = (): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    const id = (): number => 1 + Math.floor(r() * 400);
    const state = (): string => ["'hidden'", "'shown'", 'NULL', "'é''x'"][Math.floor(r() * 4)]!;
    const statements: string[] = [];
    for (let i = 0; i < 600; i++) {
      const p = r();
      if (p < 0.3) statements.push(`INSERT INTO rnd VALUES (${id()}, ${Math.floor(r() * 9)}, ${state()}, ${i}) ON CONFLICT (id) DO UPDATE SET grp = EXCLUDED.grp, state = EXCLUDED.state`);
      else if (p < 0.55) statements.push(`UPDATE rnd SET grp = grp + 1, v = ${i} WHERE id = ${id()}`);
      else if (p < 0.7) statements.push(`UPDATE rnd SET state = ${state()} WHERE id % 7 = ${Math.floor(r() * 7)}`);
      else if (p < 0.8) statements.push(`UPDATE rnd SET id = id + 1000 WHERE id = ${id()}`);
      else if (p < 0.9) statements.push(`DELETE FROM rnd WHERE id = ${id()} OR id = ${id() + 1000}`);
      else statements.push(`UPDATE rnd SET grp = ${Math.floor(r() * 9)} WHERE id BETWEEN ${id()} AND ${id()}`);
    }
    // Four writers at once, and the daemon restarted half-way.
    // Multi-row UPDATEs of concurrent writers can deadlock one another: retry, as an application would.
    const run = async (part: string[]): Promise<void> => {
      for (const statement of part) {
        for (;;) {
          try {
            await scratch.pool.query(statement);
            break;
          } catch (error) {
            if ((error as { code?: string }).code !== '40P01') throw error;
          }
        }
      }
    };
    const quarter = statements.length / 4;
    const writers = [0, 1, 2, 3].map((i) => run(statements.slice(i * quarter, (i + 1) * quarter)));
    await Promise.race(writers);
    await daemons.pop()!.stop();
    daemons.push(await startDaemon(config));
    await Promise.all(writers);
    await settle(scratch, config);
    const reports = await expectMirrorClean(scratch, config);
    const { rows } = await scratch.pool.query(`SELECT count(*) AS n FROM rnd WHERE grp % 3 <> 0 AND coalesce(state, '') <> 'hidden'`);
    const matching = Number(rows[0].n);
    expect(matching).toBeGreaterThan(20);
    expect(reports[0]!.rows).toBe(matching);
    expect((await keysOf('public.rnd')).length).toBe(matching);
  });

  it('`sql grants` grants the columns a filter reads, even excluded ones', async () => {
    await scratch.pool.query(`CREATE TABLE granted (id int PRIMARY KEY, name text, secret text, "Flag" boolean)`);
    const config = configFor([{ table: 'public.granted', exclude: ['secret', 'Flag'], filter: `"Flag" IS NOT FALSE` }]);
    const grants = await renderDaemonGrants(createDb(scratch.pool), config, 'mirror');
    expect(grants).toContain(`GRANT SELECT ("id", "name", "Flag") ON "public"."granted" TO "mirror";`);
  });
});

describe('least privilege', () => {
  it('the daemon mirrors a table filtered on an excluded column with only the grants `sql grants` prints', async () => {
    await scratch.pool.query(`CREATE TABLE private (id int PRIMARY KEY, name text, hidden boolean NOT NULL, secret text)`);
    const config = configFor([{ table: 'public.private', exclude: ['hidden', 'secret'], filter: 'NOT hidden' }]);
    await install(config, scratch.pool);
    const role = `prm filter ${scratch.database.slice(-8)}`;
    await scratch.pool.query(`CREATE ROLE ${quoteIdent(role)} LOGIN`);
    const url = new URL(scratch.databaseUrl);
    url.username = encodeURIComponent(role);
    const asRole = createPool(url.toString(), { max: 1 });
    try {
      await scratch.pool.query(await renderDaemonGrants(createDb(scratch.pool), config, role));
      await expect(asRole.query(`SELECT secret FROM public.private`)).rejects.toThrow(/permission denied/);
      daemons.push(await startDaemon({ ...config, databaseUrl: url.toString() }));
      await scratch.pool.query(`INSERT INTO private SELECT g, 'n' || g, g % 2 = 0, 's' FROM generate_series(1, 20) g`);
      await scratch.pool.query(`UPDATE private SET hidden = NOT hidden WHERE id <= 4`);
      await settle(scratch, config);
      expect(await scratch.redis.hgetall(key('public.private', '2'))).toEqual({ id: '2', name: 'n2' });
      expect(await scratch.redis.exists(key('public.private', '1'))).toBe(0);
      const reports = await verifyMirror(asRole, scratch.redis, { schema: config.schema });
      expect(reports[0]).toMatchObject({ rows: 10, missing: 0, stale: 0, extra: 0 });
    } finally {
      await Promise.all(daemons.map((d) => d.stop()));
      daemons = [];
      await asRole.end();
      await scratch.pool.query(`DROP OWNED BY ${quoteIdent(role)}; DROP ROLE ${quoteIdent(role)}`);
    }
  });
});

describe('an invalid filter', () => {
  const cases: [string, string, RegExp][] = [
    ['a syntax error', `status = 'active' AND`, /it is incomplete \(syntax error at its end\)/],
    ['an unterminated literal', `status = 'active`, /valid: unterminated quoted string;/],
    ['not boolean', `id + 1`, /it is of type integer, not boolean/],
    ['an unknown column', `stauts = 'active'`, /column "stauts" does not exist/],
    ['a qualified column', `bad.status = 'active'`, /missing FROM-clause entry for table "bad"/],
    ['a second statement', `1=1; DROP TABLE bad`, /more than one statement/],
    ['a second statement after a break-out', `true) LIMIT 0; DROP TABLE bad; SELECT (1`, /more than one statement/],
    ['a break-out of its parentheses', `true) OR (true) UNION SELECT 1 --`, /syntax error/],
    ['a subquery', `id IN (SELECT id FROM bad)`, /cannot use subquery in a filter/],
    ['a volatile function', `random() < 0.5`, /functions in a filter must be marked IMMUTABLE/],
    ['the clock', `created_at > now() - interval '1 day'`, /functions in a filter must be marked IMMUTABLE/],
    ['an aggregate', `count(*) > 1`, /aggregate functions are not allowed in a filter/],
    ['a system column', `xmin::text <> '0'`, /system columns/],
  ];

  beforeAll(async () => {
    await scratch.pool.query(`CREATE TABLE bad (id int PRIMARY KEY, status text, created_at timestamptz); INSERT INTO bad VALUES (1, 'active', now())`);
  });

  it.each(cases)('is refused in one line naming the table, and nothing is installed: %s', async (_, filter, message) => {
    const config = configFor([{ table: 'public.bad', filter }]);
    const error = await install(config, scratch.pool).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UserError);
    const text = (error as UserError).message;
    expect(text).toMatch(/^table public\.bad: "filter" /);
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
    expect(text).not.toMatch(/index|prm_filter_check/);
    const schema = await scratch.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [config.schema]);
    expect(schema.rowCount).toBe(0);
    const triggers = await scratch.pool.query(`SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.bad'::regclass`);
    expect(triggers.rowCount).toBe(0);
    expect((await scratch.pool.query(`SELECT count(*) AS n FROM bad`)).rows[0].n).toBe('1');
  });

  it('is refused by `sql install` too, outside a transaction, leaving the session clean', async () => {
    const { renderPlanned } = await import('../src/install/install.js');
    const config = configFor([{ table: 'public.bad', filter: 'id' }]);
    await expect(renderPlanned(config, 'install', scratch.pool)).rejects.toThrow(/not boolean/);
    const ok = configFor([{ table: 'public.bad', filter: 'id > 0' }]);
    const planned = await renderPlanned(ok, 'install', scratch.pool);
    expect(planned.script).toContain('(id > 0)');
    const leftovers = await scratch.pool.query(`SELECT 1 FROM pg_class WHERE relname LIKE 'prm_filter_check%'`);
    expect(leftovers.rowCount).toBe(0);
  });

  it('makes the CLI print one line and exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prm-filter-'));
    try {
      const file = join(dir, 'pg-redis-mirror.json');
      writeFileSync(file, JSON.stringify({ schema: `filter_cli`, prefix: scratch.prefix, tables: [{ table: 'public.bad', filter: '1=1; DROP TABLE bad' }] }));
      const result = await runCli(['--config', file, 'install'], { env: { DATABASE_URL: scratch.databaseUrl } });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      const lines = result.stderr.trim().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/table public\.bad: "filter" "1=1; DROP TABLE bad" is not valid: it holds more than one statement/);
      expect((await scratch.pool.query(`SELECT to_regclass('public.bad') IS NOT NULL AS ok`)).rows[0].ok).toBe('t');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is refused by the config loader when empty', async () => {
    const { resolveConfig } = await import('../src/config/load.js');
    const { configFileSchema } = await import('../src/config/schema.js');
    const parsed = configFileSchema.safeParse({ tables: [{ table: 'a', filter: '  ' }] });
    expect(parsed.success).toBe(false);
    const ok = configFileSchema.parse({ tables: [{ table: 'a', filter: 'x > 1' }] });
    expect(resolveConfig(ok, {}, {}).tables[0]!.filter).toBe('x > 1');
  });
});
