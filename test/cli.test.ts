/**
 * The CLI as a user runs it: the built bin/pg-redis-mirror.js in a subprocess, with
 * DATABASE_URL/REDIS_URL pointing at this file's scratch database and a fresh working
 * directory per test. (Build first: npx tsc -p tsconfig.build.json.)
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createScratch, sleep, type Scratch } from './helpers/scratch.js';
import { runCli, spawnCli, type RunningCli as Running, type RunResult } from './helpers/cli.js';

const DIST_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/cli/main.js');

interface RunOptions {
  cwd: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

let scratch: Scratch;
const running: Running[] = [];
const tempDirs: string[] = [];

beforeAll(async () => {
  if (!existsSync(DIST_MAIN)) throw new Error(`${DIST_MAIN} is missing: run npx tsc -p tsconfig.build.json first`);
  scratch = await createScratch('cli');
});

afterEach(async () => {
  // A listen child left behind by a failed test must not outlive it.
  for (const r of running.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await r.exited;
  }
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await scratch?.cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'prm-cli-'));
  tempDirs.push(dir);
  return dir;
}

function childEnvVars(s: Scratch, extra: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: s.databaseUrl, REDIS_URL: s.redisUrl, ...extra };
}

function spawnIn(args: string[], options: RunOptions, s: Scratch = scratch): Running {
  return spawnCli(args, { ...options, env: childEnvVars(s, options.env) });
}

/** Runs one CLI command to completion; a command that hangs is killed and fails the test. */
function cli(args: string[], options: RunOptions, s: Scratch = scratch): Promise<RunResult> {
  return runCli(args, { ...options, env: childEnvVars(s, options.env) });
}

function startListen(args: string[], options: RunOptions, s: Scratch = scratch): Running {
  const r = spawnIn([...args, 'listen'], options, s);
  running.push(r);
  return r;
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail() === '' ? '' : `\n${detail()}`}`);
    await sleep(25);
  }
}

/** SIGTERM, then the exit, which must come within a few seconds. */
async function stop(r: Running, withinMs = 5000): Promise<RunResult> {
  r.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`listen did not exit within ${withinMs} ms of SIGTERM\nstderr: ${r.stderr}`)), withinMs);
  });
  try {
    return await Promise.race([r.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

const show = (r: RunResult): string => `exit ${r.code} (signal ${r.signal})\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

function expectSuccess(r: RunResult): void {
  expect(r.code, show(r)).toBe(0);
}

/** A user error: non-zero exit, one line on stderr, "pg-redis-mirror: ...", no stack trace. */
function expectOneLineError(r: RunResult, ...mentions: (string | RegExp)[]): string {
  expect(r.code, show(r)).not.toBe(0);
  expect(r.code, show(r)).not.toBeNull();
  expect(r.stderr, show(r)).toMatch(/\n$/);
  const errorLines = r.stderr.split('\n').slice(0, -1);
  expect(errorLines, show(r)).toHaveLength(1);
  const line = errorLines[0]!;
  expect(line).toMatch(/^pg-redis-mirror: /);
  // A user error is not reported as a crash.
  expect(line).not.toMatch(/^pg-redis-mirror: unexpected error/);
  expect(r.stderr).not.toContain('    at ');
  for (const m of mentions) {
    if (typeof m === 'string') expect(line).toContain(m);
    else expect(line).toMatch(m);
  }
  return line;
}

describe('end to end: install, listen, verify, repair, uninstall', () => {
  it('mirrors two configured tables and removes every trace on uninstall --purge-redis', async () => {
    const cwd = tempDir();
    const prefix = `${scratch.prefix}e2e:`;
    await scratch.pool.query(`
      CREATE SCHEMA sales;
      CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int);
      CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric(10, 2), note text);
    `);
    writeFileSync(
      join(cwd, 'pg-redis-mirror.json'),
      JSON.stringify({ prefix, tables: ['public.items', { table: 'sales.orders', format: 'json' }] }, null, 2),
    );

    const first = await cli(['install'], { cwd });
    expectSuccess(first);
    expect(lines(first.stdout)).toEqual(expect.arrayContaining(['created public.items', 'created sales.orders']));
    expect(first.stderr).toBe('');

    const again = await cli(['install'], { cwd });
    expectSuccess(again);
    expect(lines(again.stdout)).toEqual(expect.arrayContaining(['unchanged public.items', 'unchanged sales.orders']));
    expect(again.stdout).toMatch(/^nothing to do/m);
    expect(again.stdout).not.toMatch(/^created/m);

    const sql = await cli(['sql', 'install'], { cwd });
    expectSuccess(sql);
    expect(sql.stdout.trim()).toMatch(/^-- nothing to do/);
    expect(sql.stdout).not.toMatch(/\bBEGIN\b/);

    const listen = startListen([], { cwd });
    await waitFor('listen to start', () => listen.stderr.includes('listening'), 15_000, () => listen.stderr);
    await scratch.pool.query(`INSERT INTO public.items VALUES (1, 'one', 10), (2, 'two', 20), (3, 'three', 30)`);
    await scratch.pool.query(`INSERT INTO sales.orders VALUES (1, 9.99, 'first'), (2, 100, NULL)`);
    await scratch.pool.query(`UPDATE public.items SET name = 'TWO', qty = qty + 1 WHERE id = 2`);
    await scratch.pool.query(`UPDATE sales.orders SET note = 'second' WHERE id = 2`);
    await scratch.pool.query(`DELETE FROM public.items WHERE id = 3`);

    const item = (id: number): string => `${prefix}public.items:${id}`;
    const order = (id: number): string => `${prefix}sales.orders:${id}`;
    await waitFor(
      'the writes to reach Redis',
      async () =>
        (await scratch.redis.hget(item(2), 'name')) === 'TWO' &&
        (await scratch.redis.exists(item(3))) === 0 &&
        ((await scratch.redis.get(order(2))) ?? '').includes('second'),
      15_000,
      () => listen.stderr,
    );
    expect(await scratch.redis.hgetall(item(1))).toEqual({ id: '1', name: 'one', qty: '10' });
    expect(await scratch.redis.hgetall(item(2))).toEqual({ id: '2', name: 'TWO', qty: '21' });
    expect(await scratch.redis.type(order(1))).toBe('string');
    expect(JSON.parse((await scratch.redis.get(order(1)))!)).toEqual({ id: 1, total: 9.99, note: 'first' });
    expect(JSON.parse((await scratch.redis.get(order(2)))!)).toEqual({ id: 2, total: 100, note: 'second' });

    const stopped = await stop(listen);
    expect(stopped.code, show(stopped)).toBe(0);
    expect(stopped.signal).toBeNull();

    const clean = await cli(['verify'], { cwd });
    expectSuccess(clean);
    expect(lines(clean.stdout)).toHaveLength(2);
    for (const line of lines(clean.stdout)) expect(line).toMatch(/^ok\s/);

    await scratch.redis.del(item(1));
    const drift = await cli(['verify'], { cwd });
    expect(drift.code, show(drift)).toBe(1);
    expect(drift.stdout).toMatch(/missing/);
    expect(drift.stdout).toContain(item(1));

    const repair = await cli(['verify', '--repair'], { cwd });
    expectSuccess(repair);
    expect(await scratch.redis.hgetall(item(1))).toEqual({ id: '1', name: 'one', qty: '10' });
    const after = await cli(['verify'], { cwd });
    expectSuccess(after);
    const json = await cli(['verify', '--json'], { cwd });
    expectSuccess(json);
    expect(JSON.parse(json.stdout)).toMatchObject({ clean: true });

    const uninstall = await cli(['uninstall', '--purge-redis'], { cwd });
    expectSuccess(uninstall);
    expect(lines(uninstall.stdout)).toEqual(expect.arrayContaining(['removed public.items', 'removed sales.orders']));
    const schemas = await scratch.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'redis_mirror'`);
    expect(schemas.rowCount).toBe(0);
    const triggers = await scratch.pool.query(`SELECT tgname FROM pg_trigger WHERE tgname LIKE 'redis\\_mirror\\_%'`);
    expect(triggers.rows).toEqual([]);
    expect(await scratch.redis.keys(`${prefix}*`)).toEqual([]);
    // The mirrored tables themselves are untouched.
    expect((await scratch.pool.query(`SELECT id FROM public.items`)).rowCount).toBe(2);
  });
});

describe('sql install prints exactly what install runs', () => {
  let fresh: Scratch;
  beforeAll(async () => {
    fresh = await createScratch('clisql');
  });
  afterAll(async () => {
    await fresh?.cleanup();
  });

  it('prints one transaction with the triggers; running it leaves install with nothing to do', async () => {
    const cwd = tempDir();
    const prefix = `${fresh.prefix}sql:`;
    await fresh.pool.query(`
      CREATE SCHEMA inv;
      CREATE TABLE public.things (id int PRIMARY KEY, label text);
      CREATE TABLE inv.stock (sku text, site int, n int, PRIMARY KEY (sku, site));
    `);
    const args = ['--prefix', prefix, '--table', 'public.things', '--table', 'inv.stock'];

    const printed = await cli([...args, 'sql', 'install'], { cwd }, fresh);
    expectSuccess(printed);
    const script = printed.stdout;
    expect(script.trimStart()).toMatch(/^BEGIN;/);
    expect(script.trimEnd()).toMatch(/COMMIT;$/);
    expect(script).toMatch(/CREATE (OR REPLACE )?TRIGGER/);
    // Printing runs nothing.
    expect((await fresh.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'redis_mirror'`)).rowCount).toBe(0);

    await fresh.pool.query(script);

    const install = await cli([...args, 'install'], { cwd }, fresh);
    expectSuccess(install);
    expect(lines(install.stdout)).toEqual(['unchanged public.things', 'unchanged inv.stock', 'nothing to do: install is up to date']);
    const again = await cli([...args, 'sql', 'install'], { cwd }, fresh);
    expectSuccess(again);
    expect(again.stdout.trim()).toMatch(/^-- nothing to do/);

    // And the printed install is a working one.
    await fresh.pool.query(`INSERT INTO public.things VALUES (1, 'x'); INSERT INTO inv.stock VALUES ('a', 1, 5)`);
    const listen = startListen(args, { cwd }, fresh);
    await waitFor('the rows to reach Redis', async () => (await fresh.redis.exists(`${prefix}public.things:1`, `${prefix}inv.stock:a:1`)) === 2, 15_000, () => listen.stderr);
    expect((await stop(listen)).code).toBe(0);
    expectSuccess(await cli([...args, 'verify'], { cwd }, fresh));
  });
});

describe('bad input: one line on stderr, no stack trace, non-zero exit', () => {
  beforeAll(async () => {
    await scratch.pool.query(`
      CREATE TABLE public.bad_ok (id int PRIMARY KEY, v text);
      CREATE TABLE public.bad_nopk (a int, b text);
    `);
  });
  const prefixArgs = (): string[] => ['--prefix', `${scratch.prefix}bad:`];

  it('an unknown table', async () => {
    const r = await cli([...prefixArgs(), 'install', '--table', 'public.nope'], { cwd: tempDir() });
    expectOneLineError(r, 'public.nope');
  });

  it('a table without a primary key', async () => {
    const r = await cli([...prefixArgs(), 'install', '--table', 'public.bad_nopk'], { cwd: tempDir() });
    expectOneLineError(r, 'public.bad_nopk', /primary key/i);
  });

  it('an unknown column in "columns"', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'pg-redis-mirror.json'), JSON.stringify({ tables: [{ table: 'public.bad_ok', columns: ['id', 'no_such_column'] }] }));
    const r = await cli([...prefixArgs(), 'install'], { cwd });
    expectOneLineError(r, 'no_such_column');
  });

  it('a config file that is not valid JSON', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'pg-redis-mirror.json'), '{ "tables": [ "public.bad_ok", ');
    const r = await cli([...prefixArgs(), 'install'], { cwd });
    expectOneLineError(r, 'pg-redis-mirror.json', /JSON/);
  });

  it('a config file with an unknown key names the key', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'pg-redis-mirror.json'), JSON.stringify({ tables: ['public.bad_ok'], batchSzie: 10 }));
    const r = await cli([...prefixArgs(), 'install'], { cwd });
    expectOneLineError(r, 'batchSzie');
  });

  it('an unknown key inside a table entry names the key', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'pg-redis-mirror.json'), JSON.stringify({ tables: [{ table: 'public.bad_ok', colums: ['id'] }] }));
    const r = await cli([...prefixArgs(), 'install'], { cwd });
    expectOneLineError(r, 'colums');
  });

  it('a config file with a wrong type names the field', async () => {
    const cwd = tempDir();
    writeFileSync(join(cwd, 'pg-redis-mirror.json'), JSON.stringify({ tables: ['public.bad_ok'], batchSize: 'x' }));
    const r = await cli([...prefixArgs(), 'install'], { cwd });
    expectOneLineError(r, 'batchSize');
  });

  it.each([
    ['install', '--table', 'public.bad_ok'],
    ['sql', 'install', '--table', 'public.bad_ok'],
    ['verify'],
    ['uninstall'],
    ['listen'],
  ])('unreachable PostgreSQL: %s', async (...command) => {
    const r = await cli([...prefixArgs(), '--database-url', 'postgres://127.0.0.1:1/x', ...command], { cwd: tempDir() });
    expectOneLineError(r, /PostgreSQL/, '127.0.0.1:1');
  });

  it('unreachable Redis for listen', async () => {
    const cwd = tempDir();
    const installed = await cli([...prefixArgs(), '--schema', 'bad_redis', 'install', '--table', 'public.bad_ok'], { cwd });
    expectSuccess(installed);
    try {
      const r = await cli([...prefixArgs(), '--schema', 'bad_redis', '--redis-url', 'redis://127.0.0.1:1', 'listen'], { cwd });
      expectOneLineError(r, /Redis/, '127.0.0.1:1');
    } finally {
      expectSuccess(await cli([...prefixArgs(), '--schema', 'bad_redis', 'uninstall'], { cwd }));
    }
  });

  it('listen when nothing is installed', async () => {
    const r = await cli([...prefixArgs(), '--schema', 'never_installed', 'listen'], { cwd: tempDir() });
    expectOneLineError(r, 'never_installed', /install/);
  });

  it.each([
    ['a --config file that does not exist', ['--config', 'missing.json', 'install']],
    ['install with no table configured', ['install']],
  ])('%s: the advice names only commands that exist', async (_label, args) => {
    const cwd = tempDir();
    const r = await cli([...prefixArgs(), ...args], { cwd });
    const line = expectOneLineError(r);
    const help = await cli(['--help'], { cwd });
    expectSuccess(help);
    const commands = help.stdout
      .split('Commands:')[1]!
      .split('\n')
      .map((l) => /^  (\w+)/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined);
    expect(commands).toContain('install');
    for (const [, advised] of line.matchAll(/`pg-redis-mirror (\w+)/g)) {
      expect(commands, `the error advises \`pg-redis-mirror ${advised}\`: ${line}`).toContain(advised);
    }
  });

  it('--verbose adds the stack trace after the same first line', async () => {
    const r = await cli([...prefixArgs(), '--verbose', 'install', '--table', 'public.nope'], { cwd: tempDir() });
    expect(r.code, show(r)).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toMatch(/^pg-redis-mirror: .*public\.nope/);
    expect(r.stderr).toContain('    at ');
  });
});

describe('hostile schema, table and column names', () => {
  it('installs, mirrors and verifies a table named like an injection', async () => {
    const cwd = tempDir();
    const prefix = `${scratch.prefix}hostile:`;
    const schema = 'My Schema';
    const name = 'Weird "Name"; DROP TABLE x; --';
    await scratch.pool.query(`
      CREATE TABLE public.x (id int);
      CREATE SCHEMA "My Schema";
      CREATE TABLE "My Schema"."Weird ""Name""; DROP TABLE x; --" ("Col:1" text PRIMARY KEY, "naïve é" text);
    `);
    writeFileSync(join(cwd, 'pg-redis-mirror.json'), JSON.stringify({ prefix, schema: 'mirror_hostile', tables: [{ schema, name }] }));

    const install = await cli(['install'], { cwd });
    expectSuccess(install);
    expect(lines(install.stdout)[0]).toMatch(/^created /);
    expect(install.stdout).toContain('My Schema');
    expect((await scratch.pool.query(`SELECT 1 FROM pg_class WHERE oid = to_regclass('public.x')`)).rowCount).toBe(1);
    expect(lines((await cli(['install'], { cwd })).stdout)[0]).toMatch(/^unchanged /);

    const listen = startListen([], { cwd });
    await waitFor('listen to start', () => listen.stderr.includes('listening'), 15_000, () => listen.stderr);
    await scratch.pool.query(`INSERT INTO "My Schema"."Weird ""Name""; DROP TABLE x; --" VALUES ($1, $2)`, ['a:b', 'ça va']);
    // Default layout: <prefix><schema>.<table>:<key>, with ":" in the key value escaped.
    const key = `${prefix}My Schema.Weird "Name"; DROP TABLE x; --:a\\:b`;
    await waitFor('the row to reach Redis', async () => (await scratch.redis.exists(key)) === 1, 15_000, () => listen.stderr);
    expect(await scratch.redis.hgetall(key)).toEqual({ 'Col:1': 'a:b', 'naïve é': 'ça va' });
    const stopped = await stop(listen);
    expect(stopped.code, show(stopped)).toBe(0);

    expectSuccess(await cli(['verify'], { cwd }));
    expectSuccess(await cli(['uninstall', '--purge-redis'], { cwd }));
    expect(await scratch.redis.exists(key)).toBe(0);
    expect((await scratch.pool.query(`SELECT 1 FROM pg_class WHERE oid = to_regclass('public.x')`)).rowCount).toBe(1);
  });
});
