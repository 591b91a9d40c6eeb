/**
 * `status`: the report library against a real install and daemon, and the built CLI
 * (bin/pg-redis-mirror.js, so build first: npx tsc -p tsconfig.build.json) for its output
 * and exit codes.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install } from '../src/install/install.js';
import { readDaemonStatus, readStatus, type StatusReport, type TableStatus } from '../src/status/status.js';
import { formatAge } from '../src/cli/status.js';
import { syncTables } from '../src/sync/sync.js';
import { SCHEMA_VERSION } from '../src/version.js';
import { createScratch, settle, sleep, startDaemon, type Scratch } from './helpers/scratch.js';
import { runCli, type RunResult } from './helpers/cli.js';

const DIST_STATUS = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/cli/status.js');
const UNREACHABLE_REDIS = 'redis://127.0.0.1:1';
const PHRASE = 'changes to this table are not being mirrored; run pg-redis-mirror install to restore it';

let scratch: Scratch;
let daemons: MirrorDaemon[] = [];
let counter = 0;
let cwd: string;

beforeAll(async () => {
  if (!existsSync(DIST_STATUS)) throw new Error(`${DIST_STATUS} is missing: run npx tsc -p tsconfig.build.json first`);
  scratch = await createScratch('status');
  // No config file may be picked up from the repository: the CLI runs in an empty directory.
  cwd = mkdtempSync(join(tmpdir(), 'prm-status-'));
});
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
});
afterAll(async () => {
  rmSync(cwd, { recursive: true, force: true });
  await scratch?.cleanup();
});

function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<RunResult> {
  return runCli(args, { cwd, env: { DATABASE_URL: scratch.databaseUrl, REDIS_URL: scratch.redisUrl, ...env }, timeoutMs });
}

/** The sessions of a stopped daemon can linger for a moment after their sockets closed. */
async function waitForNoDaemon(schema: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const daemon = await readDaemonStatus(scratch.pool, schema);
    if (!daemon.listening && daemon.poolSessions === 0) return;
    if (Date.now() > deadline) throw new Error(`daemon sessions still connected after ${timeoutMs} ms: ${JSON.stringify(daemon)}`);
    await sleep(25);
  }
}

function status(config: Config, extra: { redisUrl?: string; countKeys?: boolean } = {}): Promise<StatusReport> {
  return readStatus(scratch.pool, { schema: config.schema, redisUrl: extra.redisUrl ?? scratch.redisUrl, countKeys: extra.countKeys ?? true });
}

function table(report: StatusReport, name: string): TableStatus {
  const found = report.tables.find((t) => t.table === name);
  if (found === undefined) throw new Error(`no table ${name} in ${report.tables.map((t) => t.table).join(', ')}`);
  return found;
}

/** Two tables under a tool schema of this test's own. */
async function setUp(): Promise<Config> {
  const n = ++counter;
  await scratch.pool.query(`
    CREATE TABLE people_${n} (id int PRIMARY KEY, name text, secret text);
    CREATE SCHEMA sales_${n};
    CREATE TABLE sales_${n}.orders (id int PRIMARY KEY, total numeric, note text);`);
  const config = scratch.config(
    [
      { table: `public.people_${n}`, exclude: ['secret'] },
      { table: `sales_${n}.orders`, format: 'json', keyTemplate: `order${n}:{id}` },
    ],
    { schema: `status_${n}` },
  );
  await install(config, scratch.pool);
  return config;
}

describe('pg-redis-mirror status', () => {
  it('reports the install, tables, triggers, backlog, daemon and key counts, and flags hand-made trigger changes', async () => {
    const config = await setUp();
    const n = counter;
    const people = `public.people_${n}`;
    const orders = `sales_${n}.orders`;
    const daemon = await startDaemon(config);
    daemons.push(daemon);
    await scratch.pool.query(`INSERT INTO people_${n} SELECT g, 'p' || g, 's' FROM generate_series(1, 30) g`);
    await scratch.pool.query(`DELETE FROM people_${n} WHERE id > 27`);
    await scratch.pool.query(`INSERT INTO sales_${n}.orders SELECT g, g * 1.5, 'n' FROM generate_series(1, 12) g`);
    await settle(scratch, config);
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema, tables: [{ schema: `sales_${n}`, name: 'orders' }] });

    const healthy = await status(config);
    expect(healthy.schema).toBe(config.schema);
    expect(healthy.install).toEqual({ version: SCHEMA_VERSION, toolVersion: SCHEMA_VERSION, upgradeNeeded: false, newerThanTool: false });
    expect(healthy.tables.map((t) => t.table)).toEqual([people, orders]);
    const p = table(healthy, people);
    expect(p.exists).toBe(true);
    expect(p.renamedTo).toBeNull();
    expect(p.options).toEqual({ format: 'hash', keyColumns: ['id'], columns: null, exclude: ['secret'], keyTemplate: null, prefix: scratch.prefix, filter: null });
    expect(p.syncedAt).toBeNull();
    expect(p.keyPattern).toBe(`${scratch.prefix}public.people_${n}:*`);
    expect(p.keys).toBe(27);
    const o = table(healthy, orders);
    expect(o.options).toEqual({ format: 'json', keyColumns: ['id'], columns: null, exclude: [], keyTemplate: `order${n}:{id}`, prefix: scratch.prefix, filter: null });
    expect(o.syncedAt).not.toBeNull();
    expect(o.syncedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(o.syncedAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(o.syncedAgeSeconds).toBeLessThan(60);
    expect(o.keys).toBe(12);
    for (const t of healthy.tables) {
      expect(t.captureFunction).toBe(true);
      expect(t.triggers.map((tr) => tr.name)).toEqual(['insert', 'update', 'delete', 'truncate', 'key_change'].map((e) => `${config.schema}_${e}`));
      expect(t.triggers.every((tr) => tr.present && tr.enabled && tr.firing === 'origin')).toBe(true);
    }
    expect(healthy.backlog).toEqual({ entries: 0, oldestAgeSeconds: null });
    expect(healthy.daemon.listening).toBe(true);
    expect(healthy.daemon.sessions).toHaveLength(1);
    const session = healthy.daemon.sessions[0]!;
    expect(session.pid).toBeGreaterThan(0);
    expect(session.clientAddr).toMatch(/^(127\.0\.0\.1|::1)$|^$/);
    expect(session.backendStart).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(healthy.daemon.poolSessions).toBeGreaterThan(0);
    expect(healthy.redis).toMatchObject({ reachable: true, error: null, keysCounted: true });
    expect(healthy.problems).toEqual([]);

    // The CLI agrees, and exits 0.
    const ok = await cli(['status', '--schema', config.schema]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`install   version ${SCHEMA_VERSION}, up to date`);
    expect(ok.stdout).toContain('never: run pg-redis-mirror sync');
    expect(ok.stdout).toContain('5 of 5 present and enabled');
    expect(ok.stdout).toContain('keys      27 (');
    expect(ok.stdout).toContain('journal   0 entries');
    expect(ok.stdout).toMatch(/daemon {4}listening\n {10}pid \d+ from /);
    expect(ok.stdout).not.toContain('WARNING');

    // Daemon stopped: changes wait in the journal.
    await daemon.stop();
    await waitForNoDaemon(config.schema);
    await scratch.pool.query(`INSERT INTO people_${n} VALUES (100, 'late', 'x')`);
    await scratch.pool.query(`UPDATE sales_${n}.orders SET note = 'changed' WHERE id <= 3`);
    const waiting = await status(config);
    expect(waiting.backlog.entries).toBe(2);
    expect(waiting.backlog.oldestAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(waiting.daemon).toEqual({ listening: false, sessions: [], poolSessions: 0 });
    expect(table(waiting, people).keys).toBe(27);
    expect(waiting.problems).toEqual([]);

    // A trigger disabled by hand, another dropped by hand.
    await scratch.pool.query(`ALTER TABLE people_${n} DISABLE TRIGGER ${config.schema}_update`);
    await scratch.pool.query(`DROP TRIGGER ${config.schema}_delete ON sales_${n}.orders`);
    const broken = await status(config);
    const update = table(broken, people).triggers.find((tr) => tr.event === 'update')!;
    expect(update).toEqual({ event: 'update', name: `${config.schema}_update`, present: true, enabled: false, firing: 'disabled' });
    const del = table(broken, orders).triggers.find((tr) => tr.event === 'delete')!;
    expect(del).toEqual({ event: 'delete', name: `${config.schema}_delete`, present: false, enabled: false, firing: null });
    expect(table(broken, people).triggers.filter((tr) => !tr.enabled)).toHaveLength(1);
    expect(table(broken, orders).triggers.filter((tr) => !tr.enabled)).toHaveLength(1);
    expect(broken.problems.map((pr) => [pr.kind, pr.table, pr.trigger])).toEqual([
      ['trigger-disabled', people, `${config.schema}_update`],
      ['trigger-dropped', orders, `${config.schema}_delete`],
    ]);
    for (const pr of broken.problems) expect(pr.message).toContain(PHRASE);

    const loud = await cli(['status', '--schema', config.schema]);
    expect(loud.code, loud.stderr).toBe(2);
    const warnings = loud.stdout.split('\n').filter((line) => line.startsWith('WARNING:'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain(`${config.schema}_update`);
    expect(warnings[0]).toContain(people);
    expect(warnings[0]).toContain('disabled');
    expect(warnings[1]).toContain(`${config.schema}_delete`);
    expect(warnings[1]).toContain(orders);
    expect(warnings[1]).toContain('dropped');
    for (const w of warnings) expect(w).toContain(PHRASE);
    expect(loud.stdout).toContain(`${config.schema}_update DISABLED`);
    expect(loud.stdout).toContain(`${config.schema}_delete DROPPED`);
    expect(loud.stdout).toMatch(/journal {3}2 entries, oldest [\d.]+ s old/);
    expect(loud.stdout).toContain('daemon    none listening');

    const json = await cli(['status', '--schema', config.schema, '--json']);
    expect(json.code, json.stderr).toBe(2);
    const parsed = JSON.parse(json.stdout) as StatusReport & { ok: boolean };
    expect(parsed.ok).toBe(false);
    expect(parsed.problems.map((pr) => pr.kind)).toEqual(['trigger-disabled', 'trigger-dropped']);
    expect(parsed.backlog.entries).toBe(2);
    expect(parsed.tables.map((t) => t.keys)).toEqual([27, 12]);

    // What the warning says to do does restore both triggers.
    await install(config, scratch.pool);
    const restored = await status(config);
    expect(restored.problems).toEqual([]);
    expect(restored.tables.every((t) => t.triggers.every((tr) => tr.present && tr.enabled))).toBe(true);
  });

  it('flags a trigger that only fires in replica sessions (install does not count it as disabled)', async () => {
    const config = await setUp();
    await scratch.pool.query(`ALTER TABLE people_${counter} ENABLE REPLICA TRIGGER ${config.schema}_insert`);
    const report = await status(config);
    const insert = table(report, `public.people_${counter}`).triggers.find((tr) => tr.event === 'insert')!;
    expect(insert).toMatchObject({ present: true, enabled: false, firing: 'replica' });
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatchObject({ kind: 'trigger-replica-only', trigger: `${config.schema}_insert` });
    const alter = `ALTER TABLE "public"."people_${counter}" ENABLE TRIGGER "${config.schema}_insert"`;
    expect(report.problems[0]!.message).toContain(`run ${alter} to restore it`);
    // The advice works.
    await scratch.pool.query(alter);
    expect((await status(config)).problems).toEqual([]);
  });

  it('reports a dropped table, a renamed one, and an install older than the tool', async () => {
    const config = await setUp();
    const n = counter;
    await scratch.pool.query(`DROP TABLE people_${n}; ALTER TABLE sales_${n}.orders RENAME TO orders_renamed`);
    await scratch.pool.query(`UPDATE ${config.schema}.meta SET value = '1' WHERE key = 'version'`);
    const report = await status(config);
    expect(report.install).toMatchObject({ version: '1', upgradeNeeded: true, newerThanTool: false });
    const people = table(report, `public.people_${n}`);
    expect(people.exists).toBe(false);
    expect(people.current).toBeNull();
    const orders = table(report, `sales_${n}.orders`);
    expect(orders.renamedTo).toBe(`sales_${n}.orders_renamed`);
    expect(orders.triggers.every((tr) => tr.enabled)).toBe(true);
    expect(report.problems.map((p) => p.kind)).toEqual(['upgrade-needed', 'table-dropped']);
    const r = await cli(['status', '--schema', config.schema]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`UPGRADE NEEDED to ${SCHEMA_VERSION}: run pg-redis-mirror install`);
    expect(r.stdout).toContain('table     DROPPED');
  });

  it('still reports PostgreSQL when Redis is unreachable, and exits 2', async () => {
    const config = await setUp();
    const report = await status(config, { redisUrl: UNREACHABLE_REDIS });
    expect(report.redis.reachable).toBe(false);
    expect(report.redis.error).toMatch(/cannot connect to Redis at 127\.0\.0\.1:1/);
    expect(report.tables).toHaveLength(2);
    expect(report.tables.every((t) => t.keys === null && t.triggers.every((tr) => tr.enabled))).toBe(true);
    expect(report.problems.map((p) => p.kind)).toEqual(['redis-unreachable']);
    const r = await cli(['status', '--schema', config.schema], { REDIS_URL: UNREACHABLE_REDIS });
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`install   version ${SCHEMA_VERSION}, up to date`);
    expect(r.stdout).toContain('5 of 5 present and enabled');
    expect(r.stdout).toContain('redis     UNREACHABLE at 127.0.0.1:1');
    expect(r.stdout).toMatch(/^WARNING: Redis is unreachable: /m);
  });

  it('narrows to --table, skips key counts with --no-keys, and rejects a table that is not mirrored', async () => {
    const config = await setUp();
    const r = await cli(['status', '--schema', config.schema, '--table', `sales_${counter}.orders`, '--no-keys', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const parsed = JSON.parse(r.stdout) as StatusReport & { ok: boolean };
    expect(parsed.ok).toBe(true);
    expect(parsed.tables.map((t) => t.table)).toEqual([`sales_${counter}.orders`]);
    expect(parsed.tables[0]!.keys).toBeNull();
    expect(parsed.redis).toMatchObject({ reachable: true, keysCounted: false });
    const unknown = await cli(['status', '--schema', config.schema, '--table', 'public.nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^pg-redis-mirror: table public\.nope is not mirrored/);
  });

  it('exits 1 with one line on stderr when not installed', async () => {
    const r = await cli(['status', '--schema', 'never_installed']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^pg-redis-mirror: pg-redis-mirror is not installed in this database \(no schema "never_installed"\)/);
    await expect(readStatus(scratch.pool, { schema: 'never_installed', redisUrl: scratch.redisUrl })).rejects.toThrow(/not installed/);
  });

  it('formats ages', () => {
    expect(formatAge(0.42)).toBe('0.4 s');
    expect(formatAge(42)).toBe('42 s');
    expect(formatAge(300)).toBe('5 min');
    expect(formatAge(3 * 3600 + 20 * 60)).toBe('3 h 20 min');
    expect(formatAge(2 * 86_400 + 4 * 3600)).toBe('2 d 4 h');
  });
});
