/**
 * The benchmark: what pg-redis-mirror costs the writing application, how fast and how surely
 * changes reach Redis, compared with no trigger at all ("none") and with the hand-written
 * row-level pg_notify trigger + listener most teams start with ("diy").
 *
 *   npm run bench                          # full scale (~3-4 minutes), writes bench/results/<timestamp>.json
 *   BENCH_SCALE=small npx tsx bench/run.ts # a tiny smoke run (well under a minute)
 *   ... --no-write                         # do not write bench/results/
 *   ... --json-out <file>                  # also write the JSON report to <file>
 *
 * Everything runs in a scratch database (prm_bench_<random>) and under Redis prefixes
 * (prm_bench_<random>:...) that are removed at the end, also on failure or Ctrl-C; child
 * processes are killed by PID. Configurations are interleaved (none, diy, mirror, none, diy,
 * mirror...) and medians reported, each also as a ratio to "none" measured in the same run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { KeyspaceEventCounter } from './event-counter.js';

// ---------------------------------------------------------------------------------------------
// Settings

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin/pg-redis-mirror.js');
const DIY_LISTENER = join(ROOT, 'bench/diy-listener.ts');
const RESULTS_DIR = join(ROOT, 'bench/results');

const SMALL = process.env.BENCH_SCALE === 'small';
const ARGV = process.argv.slice(2);
const NO_WRITE = ARGV.includes('--no-write');
const JSON_OUT = ((): string | undefined => {
  const i = ARGV.indexOf('--json-out');
  return i >= 0 ? ARGV[i + 1] : undefined;
})();

const BASE_DATABASE_URL = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Scale {
  name: 'full' | 'small';
  rounds: number;
  /** Rows of `items` (single-row writes, bulk, latency). */
  items: number;
  /** Rows of `big` (initial copy, catch-up). */
  big: number;
  pgbenchSeconds: number;
  latencyUpdates: number;
  redisBenchmarkRequests: number;
  /** How long to wait after restarting a listener before counting what reached Redis. */
  restartWaitMs: number;
  /** Rounds of the (mirror-only) copy and catch-up figures, which are the slowest. */
  copyRounds: number;
  /** Also measure the diagnostic figures (UPDATE TPS with the daemon stopped; CLI start time x3). */
  diagnostics: boolean;
}

const SCALE: Scale = SMALL
  ? { name: 'small', rounds: 2, items: 10_000, big: 100_000, pgbenchSeconds: 1, latencyUpdates: 100, redisBenchmarkRequests: 20_000, restartWaitMs: 1000, copyRounds: 1, diagnostics: false }
  : { name: 'full', rounds: 2, items: 100_000, big: 1_000_000, pgbenchSeconds: 8, latencyUpdates: 1000, redisBenchmarkRequests: 200_000, restartWaitMs: 3000, copyRounds: 2, diagnostics: true };

const CONFIGS = ['none', 'diy', 'mirror'] as const;
type ConfigName = (typeof CONFIGS)[number];
type Listened = Exclude<ConfigName, 'none'>;

/** Pause after each latency sample, so that every update finds the listener idle (a quiet system). */
const LATENCY_PAUSE_MS = Number(process.env.BENCH_LATENCY_PAUSE_MS ?? 2);

/** Extra arguments for every mirror `listen` (experiments, e.g. "--batch-size 10000"). */
const LISTEN_ARGS = (process.env.BENCH_LISTEN_ARGS ?? '').split(/\s+/).filter((a) => a !== '');

const RUN_ID = randomBytes(4).toString('hex');
const DATABASE = `prm_bench_${RUN_ID}`;
const REDIS_ROOT = `prm_bench_${RUN_ID}:`;
const MIRROR_PREFIX = `${REDIS_ROOT}mirror:`;
const DIY_PREFIX = `${REDIS_ROOT}diy:`;
const TOOL_SCHEMA = 'redis_mirror';
/** redis-benchmark -t set,hset writes these two keys. */
const REDIS_BENCHMARK_KEYS = ['key:__rand_int__', 'myhash'];

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}
const DATABASE_URL = withDatabase(BASE_DATABASE_URL, DATABASE);
const REDIS_DB = ((): number => {
  const path = new URL(REDIS_URL).pathname.replace(/^\//, '');
  return path === '' ? 0 : Number(path);
})();

// ---------------------------------------------------------------------------------------------
// Small helpers

const started = performance.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${message}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed by PID at the end.

interface Child {
  name: string;
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** For a child run under /usr/bin/time: the measured process (time's own child). */
  inner?: number;
}

const children = new Set<Child>();
let workDir = '';

/** Children run in a temp dir (no pg-redis-mirror config file there), unless `cwd` is given. */
function spawnChild(name: string, command: string, args: readonly string[], cwd: string = workDir): Child {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const entry: Child = {
    name,
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited: new Promise((resolvePromise) => {
      child.on('error', (error) => {
        stderr += `\nspawn failed: ${error.message}`;
        resolvePromise({ code: -1, signal: null });
      });
      child.on('close', (code, signal) => {
        children.delete(entry);
        resolvePromise({ code, signal });
      });
    }),
  };
  children.add(entry);
  return entry;
}

function alive(c: Child): boolean {
  return c.child.exitCode === null && c.child.signalCode === null;
}

function killPid(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Signals a child (the measured process for /usr/bin/time children), SIGKILL after a grace period. */
async function stopChild(c: Child, graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (alive(c)) {
    if (c.inner !== undefined) killPid(c.inner, 'SIGTERM');
    else c.child.kill('SIGTERM');
  }
  const timer = setTimeout(() => {
    killPid(c.inner, 'SIGKILL');
    c.child.kill('SIGKILL');
  }, graceMs);
  try {
    return await c.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** PIDs whose parent is `pid` (to find the process /usr/bin/time runs). */
function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

async function findInner(c: Child): Promise<void> {
  const pid = c.child.pid;
  if (pid === undefined) return;
  await waitUntil(`${c.name} to start`, async () => {
    c.inner = childPids(pid)[0];
    return c.inner !== undefined || !alive(c);
  }, 10_000, 5);
}

/** Runs a command to completion; throws with its output on a non-zero exit or a timeout. */
async function run(name: string, command: string, args: readonly string[], timeoutMs = 120_000): Promise<Child> {
  const c = spawnChild(name, command, args);
  const timer = setTimeout(() => {
    killPid(c.inner, 'SIGKILL');
    c.child.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await c.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${name} failed (exit ${code ?? signal})\nstdout: ${c.stdout.slice(-2000)}\nstderr: ${c.stderr.slice(-2000)}`);
  return c;
}

const CLI_CONNECTION = ['--database-url', DATABASE_URL, '--redis-url', REDIS_URL];

function cli(args: readonly string[], timeoutMs = 120_000): Promise<Child> {
  return run(`pg-redis-mirror ${args[0] ?? ''}`, process.execPath, [BIN, ...args, ...CLI_CONNECTION], timeoutMs);
}

async function waitForOutput(c: Child, stream: 'stdout' | 'stderr', pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  await waitUntil(`${c.name} to be ready`, async () => {
    if (!alive(c)) throw new Error(`${c.name} exited early\nstdout: ${c.stdout.slice(-2000)}\nstderr: ${c.stderr.slice(-2000)}`);
    return pattern.test(c[stream]);
  }, timeoutMs, 10);
}

async function startListener(config: Listened): Promise<Child> {
  if (config === 'mirror') {
    const c = spawnChild('pg-redis-mirror listen', process.execPath, [BIN, 'listen', ...CLI_CONNECTION, '--log-level', 'info', ...LISTEN_ARGS]);
    await waitForOutput(c, 'stderr', /listening; draining the journal/);
    return c;
  }
  // Run from the project root, where `--import tsx` resolves.
  const c = spawnChild('diy-listener', process.execPath, ['--import', 'tsx', DIY_LISTENER, ...CLI_CONNECTION, '--prefix', DIY_PREFIX], ROOT);
  await waitForOutput(c, 'stdout', /^ready$/m);
  return c;
}

async function stopListener(c: Child): Promise<void> {
  const { code, signal } = await stopChild(c);
  if (code !== 0) log(`warning: ${c.name} exited with ${code ?? signal}: ${c.stderr.slice(-500)}`);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis

let pool: pg.Pool | undefined;
let redis: Redis | undefined;
let keyspace: KeyspaceWatcher | undefined;
let databaseCreated = false;
const redisBenchmarkKeysToDelete: string[] = [];

function db(): pg.Pool {
  if (pool === undefined) throw new Error('not connected');
  return pool;
}
function rds(): Redis {
  if (redis === undefined) throw new Error('not connected');
  return redis;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: BASE_DATABASE_URL, application_name: 'prm-bench-admin' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Redis keyspace notifications, subscribed only while a figure needs them (they cost Redis and
 * this process CPU, which would skew the pgbench figures). notify-keyspace-events is restored
 * to its previous value afterwards.
 */
class KeyspaceWatcher {
  private readonly sub: Redis;
  private readonly channelHead = `__keyspace@${REDIS_DB}__:`;
  private previousFlags: string | undefined;
  private readonly waiters = new Map<string, { event: string; resolve: (at: number) => void }>();

  constructor() {
    this.sub = new Redis(REDIS_URL, { lazyConnect: true });
    this.sub.on('pmessage', (_pattern: string, channel: string, event: string) => this.onEvent(channel, event));
  }

  /** Turns keyspace events on; with a prefix, also subscribes this watcher to that prefix's. */
  async enable(prefix?: string): Promise<void> {
    const [, flags] = (await rds().config('GET', 'notify-keyspace-events')) as [string, string];
    this.previousFlags ??= flags;
    const wanted = new Set([...this.previousFlags, 'K', '$', 'h']);
    await rds().config('SET', 'notify-keyspace-events', [...wanted].join(''));
    if (prefix === undefined) return;
    if (this.sub.status === 'wait') await this.sub.connect();
    await this.sub.psubscribe(`${this.channelHead}${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`);
  }

  async disable(): Promise<void> {
    if (this.sub.status === 'ready') await this.sub.punsubscribe();
    if (this.previousFlags !== undefined) await rds().config('SET', 'notify-keyspace-events', this.previousFlags);
  }

  async close(): Promise<void> {
    await this.disable().catch(() => undefined);
    this.sub.disconnect();
  }

  private onEvent(channel: string, event: string): void {
    const at = performance.now();
    const key = channel.slice(this.channelHead.length);
    const waiter = this.waiters.get(key);
    if (waiter !== undefined && waiter.event === event) {
      this.waiters.delete(key);
      waiter.resolve(at);
    }
  }

  /** Resolves with the arrival time of the next `event` on `key`. Register before the write. */
  waitFor(key: string, event: string, timeoutMs: number): Promise<number> {
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(new Error(`no ${event} event for ${key} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(key, {
        event,
        resolve: (at) => {
          clearTimeout(timer);
          resolvePromise(at);
        },
      });
    });
  }
}

function ks(): KeyspaceWatcher {
  if (keyspace === undefined) throw new Error('not connected');
  return keyspace;
}

// ---------------------------------------------------------------------------------------------
// The scratch database and the configurations

const SETUP_SQL = (items: number, big: number): string => `
CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, v int NOT NULL, payload text NOT NULL);
INSERT INTO items SELECT g, 'item-' || g, 0, substr(repeat(md5(g::text), 4), 1, 100) FROM generate_series(1, ${items}) g;
CREATE TABLE events (id bigserial PRIMARY KEY, name text NOT NULL, v int NOT NULL, payload text NOT NULL);
CREATE TABLE big (id bigint PRIMARY KEY, name text NOT NULL, v int NOT NULL, payload text NOT NULL);
INSERT INTO big SELECT g, 'big-' || g, 0, substr(repeat(md5(g::text), 4), 1, 100) FROM generate_series(1, ${big}) g;
`;

/** The trigger most teams write by hand: the whole row in the NOTIFY payload. */
const DIY_INSTALL_SQL = `
CREATE FUNCTION diy_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('diy', json_build_object('table', TG_TABLE_NAME, 'op', TG_OP, 'row', row_to_json(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END))::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER diy_notify AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION diy_notify();
CREATE TRIGGER diy_notify AFTER INSERT OR UPDATE OR DELETE ON events FOR EACH ROW EXECUTE FUNCTION diy_notify();
`;
const DIY_UNINSTALL_SQL = `
DROP TRIGGER IF EXISTS diy_notify ON items;
DROP TRIGGER IF EXISTS diy_notify ON events;
DROP FUNCTION IF EXISTS diy_notify();
`;

/** Redis key of a row, and the keyspace event that marks a new value of it. */
function itemKey(config: Listened, table: string, id: number | string): string {
  return config === 'mirror' ? `${MIRROR_PREFIX}public.${table}:${id}` : `${DIY_PREFIX}${table}:${id}`;
}
const WRITE_EVENT: Record<Listened, string> = { mirror: 'hset', diy: 'set' };

/** Reads one column of many rows from Redis in pipelined chunks (null where the key is missing). */
async function readField(config: Listened, table: string, ids: readonly (number | string)[], field: string): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (let i = 0; i < ids.length; i += 5000) {
    const pipeline = rds().pipeline();
    for (const id of ids.slice(i, i + 5000)) {
      if (config === 'mirror') pipeline.hget(itemKey(config, table, id), field);
      else pipeline.get(itemKey(config, table, id));
    }
    const results = (await pipeline.exec()) ?? [];
    for (const [error, value] of results) {
      if (error !== null || typeof value !== 'string') {
        out.push(null);
      } else if (config === 'mirror') {
        out.push(value);
      } else {
        const row = JSON.parse(value) as Record<string, unknown>;
        const v = row[field];
        out.push(v === undefined || v === null ? null : String(v));
      }
    }
  }
  return out;
}

async function setUp(config: ConfigName): Promise<Child | undefined> {
  if (config === 'none') return undefined;
  if (config === 'diy') await db().query(DIY_INSTALL_SQL);
  else await cli(['install', '--prefix', MIRROR_PREFIX, '--table', 'public.items', '--table', 'public.events']);
  return startListener(config);
}

async function tearDown(config: ConfigName, listener: Child | undefined): Promise<void> {
  if (listener !== undefined) await stopListener(listener);
  if (config === 'diy') {
    await db().query(DIY_UNINSTALL_SQL);
    await deleteKeys(`${DIY_PREFIX}*`);
  } else if (config === 'mirror') {
    await cli(['uninstall', '--purge-redis', '--prefix', MIRROR_PREFIX]);
  }
}

async function deleteKeys(pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await rds().scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    if (keys.length > 0) deleted += await rds().unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/**
 * Waits until every change committed so far is in Redis: for the mirror an empty journal;
 * for both, a marker update of row 1 whose new value must show up (the diy listener applies
 * notifications in commit order, so earlier ones are done by then).
 */
async function journalEmpty(): Promise<boolean> {
  const r = await db().query<{ empty: boolean }>(`SELECT NOT EXISTS (SELECT 1 FROM ${TOOL_SCHEMA}.journal) AS empty`);
  return r.rows[0]?.empty === true;
}

async function settle(config: ConfigName, timeoutMs = 120_000): Promise<void> {
  if (config === 'none') return;
  if (config === 'mirror') await waitUntil('the journal to drain', () => journalEmpty(), timeoutMs);
  const r = await db().query<{ v: number }>('UPDATE items SET v = v + 1 WHERE id = 1 RETURNING v');
  const expected = String(r.rows[0]!.v);
  await waitUntil(`the ${config} listener to catch up`, async () => (await readField(config, 'items', [1], 'v'))[0] === expected, timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// Figures

interface Samples {
  updateTps: Record<ConfigName, number[]>;
  /** pgbench UPDATE with the mirror's triggers installed but no daemon running. */
  updateTpsTriggersOnly: number[];
  bulkJournalEmptyMs: number[];
  cliStartMs: number[];
  insertTps: Record<ConfigName, number[]>;
  bulkStatementMs: Record<ConfigName, number[]>;
  bulkAllInRedisMs: Record<Listened, number[]>;
  bulkMismatches: Record<Listened, number[]>;
  bulkErrors: string[];
  latencyMs: Record<Listened, number[]>;
  latencyBackToBackMs: Record<Listened, number[]>;
  copyRowsPerSecond: number[];
  copyRssMb: number[];
  catchUpSeconds: number[];
  catchUpFromReadySeconds: number[];
  catchUpRowsPerSecond: number[];
  catchUpRssMb: number[];
  catchUpStatementMs: number[];
  catchUpCorrectSample: boolean[];
  copyCorrectSample: boolean[];
  redisBenchmark: { set: number[]; hset: number[] };
}

const samples: Samples = {
  updateTps: { none: [], diy: [], mirror: [] },
  updateTpsTriggersOnly: [],
  bulkJournalEmptyMs: [],
  cliStartMs: [],
  insertTps: { none: [], diy: [], mirror: [] },
  bulkStatementMs: { none: [], diy: [], mirror: [] },
  bulkAllInRedisMs: { diy: [], mirror: [] },
  bulkMismatches: { diy: [], mirror: [] },
  bulkErrors: [],
  latencyMs: { diy: [], mirror: [] },
  latencyBackToBackMs: { diy: [], mirror: [] },
  copyRowsPerSecond: [],
  copyRssMb: [],
  catchUpSeconds: [],
  catchUpFromReadySeconds: [],
  catchUpRowsPerSecond: [],
  catchUpRssMb: [],
  catchUpStatementMs: [],
  catchUpCorrectSample: [],
  copyCorrectSample: [],
  redisBenchmark: { set: [], hset: [] },
};

interface Durability {
  bigRowInsert: Record<ConfigName, { ok: boolean; error: string | null; inRedis: boolean | null }>;
  whileListenerDown: Record<Listened, { updated: number; reachedRedis: number; waitedMs: number }>;
}
const durability: Partial<Durability['bigRowInsert']> = {};
const whileDown: Partial<Durability['whileListenerDown']> = {};

const PGBENCH_SCRIPTS = {
  update: (items: number) => `\\set id random(1, ${items})\nUPDATE items SET v = v + 1 WHERE id = :id;\n`,
  insert: () => `\\set v random(1, 1000000)\nINSERT INTO events (name, v, payload) VALUES ('event-' || :v, :v, repeat('p', 100));\n`,
};

async function pgbench(script: 'update' | 'insert'): Promise<number> {
  await db().query('CHECKPOINT');
  const file = join(workDir, `${script}.sql`);
  const args = ['-n', '-M', 'prepared', '-c', '4', '-j', '2', '-T', String(SCALE.pgbenchSeconds), '-f', file, DATABASE_URL];
  const c = await run(`pgbench ${script}`, 'pgbench', args, (SCALE.pgbenchSeconds + 60) * 1000);
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(c.stdout);
  if (m === null) throw new Error(`cannot read pgbench TPS from: ${c.stdout}`);
  const failed = /number of failed transactions: (\d+)/.exec(c.stdout);
  if (failed !== null && Number(failed[1]) > 0) throw new Error(`pgbench ${script}: ${failed[1]} failed transactions\n${c.stdout}`);
  return Number(m[1]);
}

/** Figure 2: one UPDATE over every row of items. */
async function bulk(config: ConfigName): Promise<void> {
  let counter: KeyspaceEventCounter | undefined;
  if (config !== 'none') {
    await ks().enable();
    counter = await KeyspaceEventCounter.open(REDIS_URL, REDIS_DB, itemKey(config, 'items', ''), WRITE_EVENT[config], SCALE.items, 120_000);
  }
  try {
    const t0 = performance.now();
    await db().query('UPDATE items SET v = v + 1');
    const committed = performance.now();
    samples.bulkStatementMs[config].push(committed - t0);
    if (config === 'none' || counter === undefined) return;
    if (config === 'mirror') {
      // Cross-check that does not depend on keyspace events reaching this process: the daemon
      // deletes journal rows only after their Redis writes, so an empty journal is an upper bound.
      await waitUntil('the journal to drain', () => journalEmpty(), 120_000, 5);
      samples.bulkJournalEmptyMs.push(performance.now() - committed);
    }
    try {
      const lastAt = await counter.done;
      samples.bulkAllInRedisMs[config].push(Math.max(0, lastAt - committed));
    } catch (error) {
      samples.bulkErrors.push(`${config}: ${errorText(error)}`);
      log(`warning: ${config} bulk: ${errorText(error)}`);
    }
  } finally {
    counter?.close();
    if (config !== 'none') await ks().disable();
  }
  // Untimed: every value in Redis must be the new one.
  await settle(config);
  const rows = await db().query<{ id: string; v: number }>('SELECT id, v FROM items ORDER BY id');
  const values = await readField(config, 'items', rows.rows.map((r) => r.id), 'v');
  const mismatches = rows.rows.filter((r, i) => values[i] !== String(r.v)).length;
  samples.bulkMismatches[config].push(mismatches);
}

/**
 * Figure 3: sequential single-row updates, COMMIT returned → keyspace event. With a pause after
 * each (a quiet system: every update finds the listener idle), and back to back (each update
 * sent as soon as the previous one reached Redis: a steady trickle of writes).
 */
async function latency(config: Listened, pauseMs: number, into: number[]): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL, application_name: 'prm-bench-latency' });
  await client.connect();
  await ks().enable(config === 'mirror' ? MIRROR_PREFIX : DIY_PREFIX);
  try {
    await client.query({ name: 'latency', text: 'UPDATE items SET v = v + 1 WHERE id = $1', values: ['1'] });
    await sleep(50);
    for (let i = 0; i < SCALE.latencyUpdates; i++) {
      const id = 2 + ((i * 7919) % (SCALE.items - 1));
      const event = ks().waitFor(itemKey(config, 'items', id), WRITE_EVENT[config], 10_000);
      event.catch(() => undefined);
      await client.query({ name: 'latency', text: 'UPDATE items SET v = v + 1 WHERE id = $1', values: [String(id)] });
      const committed = performance.now();
      const at = await event;
      into.push(Math.max(0, at - committed));
      if (pauseMs > 0) await sleep(pauseMs);
    }
  } finally {
    await ks().disable();
    await client.end();
  }
}

/** Figure 6: a row too big for a NOTIFY payload, and changes made while the listener is down. */
async function durabilityFacts(config: ConfigName, listener: Child | undefined): Promise<Child | undefined> {
  const payload = 'x'.repeat(10_000);
  try {
    const r = await db().query<{ id: string }>("INSERT INTO events (name, v, payload) VALUES ('big-row', 0, $1) RETURNING id", [payload]);
    let inRedis: boolean | null = null;
    if (config !== 'none') {
      const id = r.rows[0]!.id;
      inRedis = await waitUntil('the 10 kB row in Redis', async () => (await readField(config, 'events', [id], 'payload'))[0] === payload, 5000)
        .then(() => true, () => false);
    }
    durability[config] = { ok: true, error: null, inRedis };
  } catch (error) {
    durability[config] = { ok: false, error: errorText(error), inRedis: config === 'none' ? null : false };
  }
  if (config === 'none' || listener === undefined) return listener;

  await stopListener(listener);
  const ids: string[] = [];
  const expected: string[] = [];
  for (let id = 2; id < 102; id++) {
    const r = await db().query<{ v: number }>('UPDATE items SET v = v + 1 WHERE id = $1 RETURNING v', [id]);
    ids.push(String(id));
    expected.push(String(r.rows[0]!.v));
  }
  const restarted = await startListener(config);
  await sleep(SCALE.restartWaitMs);
  const values = await readField(config, 'items', ids, 'v');
  whileDown[config] = { updated: ids.length, reachedRedis: values.filter((v, i) => v === expected[i]).length, waitedMs: SCALE.restartWaitMs };
  return restarted;
}

/** Runs a CLI command under /usr/bin/time -f %M; returns the child (already started). */
function timed(name: string, args: readonly string[], rssFile: string): Child {
  return spawnChild(name, '/usr/bin/time', ['-f', '%M', '-o', rssFile, process.execPath, BIN, ...args, ...CLI_CONNECTION]);
}

function readRssMb(file: string): number {
  const kb = Number(readFileSync(file, 'utf8').trim().split('\n').pop());
  return kb / 1024;
}

async function sampleMatches(table: string, count: number): Promise<boolean> {
  const r = await db().query<{ id: string; v: number }>(`SELECT id, v FROM ${table} ORDER BY random() LIMIT ${count}`);
  const values = await readField('mirror', table, r.rows.map((x) => x.id), 'v');
  return r.rows.every((row, i) => values[i] === String(row.v));
}

/** Figures 4 and 5: initial copy of `big`, then a journal of one change per row, drained. */
async function copyAndCatchUp(roundIndex: number): Promise<void> {
  await db().query('VACUUM big');
  await cli(['install', '--prefix', MIRROR_PREFIX, '--table', 'public.big']);
  try {
    // 4. initial copy
    const copyRss = join(workDir, `copy-${roundIndex}.rss`);
    const t0 = performance.now();
    const copy = timed('pg-redis-mirror sync', ['sync', '--table', 'public.big', '--quiet'], copyRss);
    const { code } = await copy.exited;
    const copyS = (performance.now() - t0) / 1000;
    if (code !== 0) throw new Error(`sync failed (exit ${code}): ${copy.stderr.slice(-2000)}`);
    samples.copyRowsPerSecond.push(SCALE.big / copyS);
    samples.copyRssMb.push(readRssMb(copyRss));
    samples.copyCorrectSample.push(await sampleMatches('big', 2000));
    log(`copy: ${SCALE.big} rows in ${copyS.toFixed(2)} s, peak RSS ${readRssMb(copyRss).toFixed(1)} MB`);

    // 5. catch-up: one change per row journaled while no daemon runs
    const s0 = performance.now();
    await db().query('UPDATE big SET v = v + 1');
    samples.catchUpStatementMs.push(performance.now() - s0);
    const drainRss = join(workDir, `drain-${roundIndex}.rss`);
    const d0 = performance.now();
    const daemon = timed('pg-redis-mirror listen (catch-up)', ['listen', '--log-level', 'info', ...LISTEN_ARGS], drainRss);
    await findInner(daemon);
    let readyAt: number | undefined;
    await waitUntil('the journal to drain', async () => {
      if (!alive(daemon)) throw new Error(`listen exited early: ${daemon.stderr.slice(-2000)}`);
      if (readyAt === undefined && /listening; draining the journal/.test(daemon.stderr)) readyAt = performance.now();
      return journalEmpty();
    }, 600_000, 25);
    const drainedAt = performance.now();
    const drainS = (drainedAt - d0) / 1000;
    const { code: daemonCode } = await stopChild(daemon);
    if (daemonCode !== 0) log(`warning: catch-up listen exited with ${daemonCode}: ${daemon.stderr.slice(-500)}`);
    samples.catchUpSeconds.push(drainS);
    samples.catchUpFromReadySeconds.push((drainedAt - (readyAt ?? d0)) / 1000);
    samples.catchUpRowsPerSecond.push(SCALE.big / drainS);
    samples.catchUpRssMb.push(readRssMb(drainRss));
    samples.catchUpCorrectSample.push(await sampleMatches('big', 2000));
    log(`catch-up: ${SCALE.big} changes drained in ${drainS.toFixed(2)} s, peak RSS ${readRssMb(drainRss).toFixed(1)} MB`);
  } finally {
    await cli(['uninstall', '--purge-redis', '--prefix', MIRROR_PREFIX]);
  }
}

/** Figure 7: what Redis itself does on this machine. */
async function redisBenchmark(): Promise<void> {
  const url = new URL(REDIS_URL);
  // Delete the keys redis-benchmark writes at the end, unless they were there before.
  const existing = await Promise.all(REDIS_BENCHMARK_KEYS.map(async (k) => (await rds().exists(k)) === 1));
  REDIS_BENCHMARK_KEYS.forEach((k, i) => {
    if (!existing[i] && !redisBenchmarkKeysToDelete.includes(k)) redisBenchmarkKeysToDelete.push(k);
  });
  const args = ['-h', url.hostname, '-p', url.port || '6379', '--dbnum', String(REDIS_DB), '-P', '16', '-q', '-t', 'set,hset', '-n', String(SCALE.redisBenchmarkRequests)];
  const c = await run('redis-benchmark', 'redis-benchmark', args, 120_000);
  const text = c.stdout.replace(/\r/g, '\n');
  const read = (name: string): number => {
    const m = new RegExp(`^${name}: ([\\d.]+) requests per second`, 'm').exec(text);
    if (m === null) throw new Error(`cannot read ${name} from redis-benchmark output: ${text}`);
    return Number(m[1]);
  };
  samples.redisBenchmark.set.push(read('SET'));
  samples.redisBenchmark.hset.push(read('HSET'));
}

// ---------------------------------------------------------------------------------------------
// Report

type Cell = number | string | boolean | null;

interface Figure {
  id: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower' | 'info';
  none: Cell;
  diy: Cell;
  mirror: Cell;
  /** value / none where both are numbers. */
  ratio: { diy: number | null; mirror: number | null };
  samples?: Partial<Record<ConfigName, number[]>>;
  note?: string;
}

function ratio(value: Cell, base: Cell): number | null {
  return typeof value === 'number' && typeof base === 'number' && base !== 0 ? round(value / base, 3) : null;
}

function figure(f: Omit<Figure, 'ratio'>, base: Cell = f.none): Figure {
  const r = (c: Cell): Cell => (typeof c === 'number' ? round(c, c >= 1000 ? 0 : c >= 100 ? 1 : 2) : c);
  return { ...f, none: r(f.none), diy: r(f.diy), mirror: r(f.mirror), ratio: { diy: ratio(f.diy, base), mirror: ratio(f.mirror, base) } };
}

function latencyStats(values: readonly number[]): { p50: number; p95: number; p99: number; max: number } | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1]! };
}

function buildFigures(): Figure[] {
  const m = (xs: readonly number[]): number | null => median(xs);
  const k = (n: number): string => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);
  const figures: Figure[] = [];
  figures.push(figure({
    id: 'write_update_tps', label: 'write: single-row UPDATE, pgbench TPS', unit: 'tps', better: 'higher',
    none: m(samples.updateTps.none), diy: m(samples.updateTps.diy), mirror: m(samples.updateTps.mirror), samples: samples.updateTps,
  }));
  figures.push(figure({
    id: 'write_update_tps_triggers_only', label: 'write: single-row UPDATE, daemon stopped (triggers only)', unit: 'tps', better: 'higher',
    none: m(samples.updateTps.none), diy: null, mirror: m(samples.updateTpsTriggersOnly), samples: { mirror: samples.updateTpsTriggersOnly },
  }));
  figures.push(figure({
    id: 'write_insert_tps', label: 'write: single-row INSERT, pgbench TPS', unit: 'tps', better: 'higher',
    none: m(samples.insertTps.none), diy: m(samples.insertTps.diy), mirror: m(samples.insertTps.mirror), samples: samples.insertTps,
  }));
  const bulkNone = m(samples.bulkStatementMs.none);
  figures.push(figure({
    id: 'bulk_statement_ms', label: `bulk: UPDATE of ${k(SCALE.items)} rows, statement+commit (ms)`, unit: 'ms', better: 'lower',
    none: bulkNone, diy: m(samples.bulkStatementMs.diy), mirror: m(samples.bulkStatementMs.mirror), samples: samples.bulkStatementMs,
  }));
  figures.push(figure({
    id: 'bulk_all_in_redis_ms', label: `bulk: COMMIT → all ${k(SCALE.items)} new values in Redis (ms)`, unit: 'ms', better: 'lower',
    none: null, diy: m(samples.bulkAllInRedisMs.diy), mirror: m(samples.bulkAllInRedisMs.mirror), samples: samples.bulkAllInRedisMs,
    note: samples.bulkErrors.length > 0 ? samples.bulkErrors.join('; ') : undefined,
  }));
  figures.push(figure({
    id: 'bulk_journal_empty_ms', label: 'bulk: COMMIT → journal empty (ms, cross-check)', unit: 'ms', better: 'lower',
    none: null, diy: null, mirror: m(samples.bulkJournalEmptyMs), samples: { mirror: samples.bulkJournalEmptyMs },
  }));
  const total = (c: Listened): number | null => {
    const s = m(samples.bulkStatementMs[c]);
    const r = m(samples.bulkAllInRedisMs[c]);
    return s === null || r === null ? null : s + r;
  };
  figures.push(figure({
    id: 'bulk_total_ms', label: 'bulk: statement + until all in Redis (ms; none: statement)', unit: 'ms', better: 'lower',
    none: bulkNone, diy: total('diy'), mirror: total('mirror'),
  }));
  const allMatched = (c: Listened): Cell => (samples.bulkMismatches[c].length === 0 ? null : samples.bulkMismatches[c].every((x) => x === 0) ? 'yes' : `no (${Math.max(...samples.bulkMismatches[c])} wrong)`);
  figures.push(figure({ id: 'bulk_all_matched', label: 'bulk: every value correct in Redis', unit: '', better: 'info', none: null, diy: allMatched('diy'), mirror: allMatched('mirror') }));
  const latencyFigures = (id: string, label: string, from: Record<Listened, number[]>): void => {
    const lat = { diy: latencyStats(from.diy), mirror: latencyStats(from.mirror) };
    for (const p of ['p50', 'p95', 'p99', 'max'] as const) {
      figures.push(figure({
        id: `${id}_${p}_ms`, label: `${label}, ${p} (ms)`, unit: 'ms', better: 'lower',
        none: null, diy: lat.diy === null ? null : round(lat.diy[p], 3), mirror: lat.mirror === null ? null : round(lat.mirror[p], 3),
      }));
    }
  };
  latencyFigures('latency', 'latency: COMMIT → key updated', samples.latencyMs);
  latencyFigures('latency_b2b', 'latency, back-to-back updates', samples.latencyBackToBackMs);
  figures.push(figure({ id: 'copy_rows_per_s', label: `copy: sync of ${k(SCALE.big)} rows (rows/s)`, unit: 'rows/s', better: 'higher', none: null, diy: null, mirror: m(samples.copyRowsPerSecond), samples: { mirror: samples.copyRowsPerSecond } }));
  figures.push(figure({ id: 'copy_rss_mb', label: 'copy: sync peak RSS (MB)', unit: 'MB', better: 'lower', none: null, diy: null, mirror: m(samples.copyRssMb), samples: { mirror: samples.copyRssMb } }));
  figures.push(figure({ id: 'catchup_seconds', label: `catch-up: ${k(SCALE.big)} journaled changes drained (s)`, unit: 's', better: 'lower', none: null, diy: null, mirror: m(samples.catchUpSeconds), samples: { mirror: samples.catchUpSeconds } }));
  figures.push(figure({ id: 'catchup_rows_per_s', label: 'catch-up: rows/s', unit: 'rows/s', better: 'higher', none: null, diy: null, mirror: m(samples.catchUpRowsPerSecond), samples: { mirror: samples.catchUpRowsPerSecond } }));
  figures.push(figure({ id: 'catchup_rss_mb', label: 'catch-up: listen peak RSS (MB)', unit: 'MB', better: 'lower', none: null, diy: null, mirror: m(samples.catchUpRssMb), samples: { mirror: samples.catchUpRssMb } }));
  const big = (c: ConfigName): Cell => {
    const d = durability[c];
    if (d === undefined) return null;
    if (!d.ok) return `fails: ${d.error ?? ''}`;
    return d.inRedis === null ? 'ok' : d.inRedis ? 'ok, in Redis' : 'ok, NOT in Redis';
  };
  figures.push(figure({ id: 'big_row_insert', label: 'INSERT of a row with a 10 kB payload', unit: '', better: 'info', none: big('none'), diy: big('diy'), mirror: big('mirror') }));
  const down = (c: Listened): Cell => (whileDown[c] === undefined ? null : `${whileDown[c].reachedRedis} / ${whileDown[c].updated}`);
  figures.push(figure({ id: 'changes_while_down', label: `changes made while listener down, in Redis ${SCALE.restartWaitMs / 1000} s after restart`, unit: '', better: 'info', none: null, diy: down('diy'), mirror: down('mirror') }));
  figures.push(figure({ id: 'redis_benchmark_set', label: 'reference: redis-benchmark -P 16 SET (req/s)', unit: 'req/s', better: 'info', none: m(samples.redisBenchmark.set), diy: null, mirror: null }));
  figures.push(figure({ id: 'redis_benchmark_hset', label: 'reference: redis-benchmark -P 16 HSET (req/s)', unit: 'req/s', better: 'info', none: m(samples.redisBenchmark.hset), diy: null, mirror: null }));
  return figures;
}

interface Target {
  target: string;
  value: number | null;
  met: boolean | null;
}

function targets(figures: readonly Figure[]): Target[] {
  const f = (id: string): Figure => figures.find((x) => x.id === id)!;
  const num = (c: Cell | number | null): number | null => (typeof c === 'number' ? c : null);
  const check = (target: string, value: number | null, ok: (v: number) => boolean): Target => ({ target, value, met: value === null ? null : ok(value) });
  return [
    check('single-row UPDATE TPS ≥ 0.85x none', f('write_update_tps').ratio.mirror, (v) => v >= 0.85),
    check('single-row INSERT TPS ≥ 0.85x none', f('write_insert_tps').ratio.mirror, (v) => v >= 0.85),
    check('bulk statement ≤ 1.3x none', f('bulk_statement_ms').ratio.mirror, (v) => v <= 1.3),
    check(`all ${SCALE.items} in Redis ≤ 650 ms after COMMIT`, num(f('bulk_all_in_redis_ms').mirror), (v) => v <= 650),
    check('latency p50 ≤ 1 ms', num(f('latency_p50_ms').mirror), (v) => v <= 1),
    check('latency p99 ≤ 5 ms', num(f('latency_p99_ms').mirror), (v) => v <= 5),
    check('copy ≥ 200k rows/s', num(f('copy_rows_per_s').mirror), (v) => v >= 200_000),
    check('copy RSS ≤ 200 MB', num(f('copy_rss_mb').mirror), (v) => v <= 200),
    check('catch-up RSS ≤ 200 MB', num(f('catchup_rss_mb').mirror), (v) => v <= 200),
  ];
}

function cellText(c: Cell): string {
  if (c === null) return '—';
  if (typeof c === 'boolean') return c ? 'yes' : 'no';
  if (typeof c === 'number') return c >= 1000 ? Math.round(c).toLocaleString('en-US') : String(c);
  return c.replace(/\|/g, '\\|');
}

function ratioText(r: number | null): string {
  return r === null ? '—' : `${r.toFixed(2)}x`;
}

function markdownTable(figures: readonly Figure[]): string {
  const rows = [
    ['figure', 'none', 'diy', 'mirror', 'diy / none', 'mirror / none'],
    ...figures.map((f) => [f.label, cellText(f.none), cellText(f.diy), cellText(f.mirror), ratioText(f.ratio.diy), ratioText(f.ratio.mirror)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 2)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(rows[0]!), sep, ...rows.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Orchestration

async function machine(): Promise<Record<string, string | number>> {
  const pgVersion = (await db().query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
  const info = await rds().info('server');
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryMb: Math.round(totalmem() / 1024 / 1024),
    node: process.version,
    postgres: pgVersion,
    redis: redisVersion,
  };
}

async function phase(config: ConfigName, roundIndex: number, last: boolean): Promise<void> {
  await db().query('VACUUM ANALYZE items, events');
  let listener = await setUp(config);
  try {
    await settle(config);
    samples.updateTps[config].push(await pgbench('update'));
    samples.insertTps[config].push(await pgbench('insert'));
    await settle(config);
    await bulk(config);
    if (config !== 'none') {
      await settle(config);
      await latency(config, LATENCY_PAUSE_MS, samples.latencyMs[config]);
      await settle(config);
      await latency(config, 0, samples.latencyBackToBackMs[config]);
    }
    if (config === 'mirror' && listener !== undefined && SCALE.diagnostics) {
      // Diagnostic: the triggers' own cost, without the daemon competing for the CPUs.
      await stopListener(listener);
      listener = undefined;
      samples.updateTpsTriggersOnly.push(await pgbench('update'));
      listener = await startListener(config);
      await settle(config);
    }
    if (last) listener = await durabilityFacts(config, listener);
    log(`round ${roundIndex + 1} ${config}: update ${samples.updateTps[config].at(-1)?.toFixed(0)} tps, insert ${samples.insertTps[config].at(-1)?.toFixed(0)} tps, bulk ${samples.bulkStatementMs[config].at(-1)?.toFixed(0)} ms` +
      (config === 'none' ? '' : `, all in Redis +${samples.bulkAllInRedisMs[config].at(-1)?.toFixed(0) ?? '?'} ms`));
  } finally {
    await tearDown(config, listener);
  }
}

async function cleanUp(): Promise<void> {
  for (const c of [...children]) {
    killPid(c.inner, 'SIGKILL');
    killPid(c.child.pid, 'SIGKILL');
  }
  await Promise.all([...children].map((c) => c.exited));
  if (keyspace !== undefined) await keyspace.close().catch((e: unknown) => log(`cleanup: ${errorText(e)}`));
  if (pool !== undefined) await pool.end().catch(() => undefined);
  pool = undefined;
  if (databaseCreated) {
    await admin((c) => c.query(`DROP DATABASE IF EXISTS "${DATABASE}" WITH (FORCE)`)).catch((e: unknown) => log(`cleanup: cannot drop ${DATABASE}: ${errorText(e)}`));
  }
  if (redis !== undefined) {
    await deleteKeys(`${REDIS_ROOT}*`).catch((e: unknown) => log(`cleanup: ${errorText(e)}`));
    if (redisBenchmarkKeysToDelete.length > 0) await redis.del(...redisBenchmarkKeysToDelete).catch(() => undefined);
    redis.disconnect();
    redis = undefined;
  }
  if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
}

async function main(): Promise<number> {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run npm run build first');
  workDir = mkdtempSync(join(tmpdir(), 'prm-bench-'));
  writeFileSync(join(workDir, 'update.sql'), PGBENCH_SCRIPTS.update(SCALE.items));
  writeFileSync(join(workDir, 'insert.sql'), PGBENCH_SCRIPTS.insert());
  const startedAt = new Date();

  redis = new Redis(REDIS_URL);
  await redis.ping();
  keyspace = new KeyspaceWatcher();
  await admin((c) => c.query(`CREATE DATABASE "${DATABASE}"`));
  databaseCreated = true;
  pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3, application_name: 'prm-bench' });
  pool.on('error', () => undefined);
  log(`scale ${SCALE.name}: database ${DATABASE}, Redis prefix ${REDIS_ROOT}; creating ${SCALE.items} + ${SCALE.big} rows`);
  await db().query(SETUP_SQL(SCALE.items, SCALE.big));
  await db().query('VACUUM ANALYZE items, events, big');

  for (let i = 0; i < (SCALE.diagnostics ? 3 : 1); i++) {
    const t = performance.now();
    await run('pg-redis-mirror --help', process.execPath, [BIN, '--help']);
    samples.cliStartMs.push(performance.now() - t);
  }

  for (let r = 0; r < SCALE.rounds; r++) {
    const last = r === SCALE.rounds - 1;
    for (const config of CONFIGS) await phase(config, r, last);
    if (r < SCALE.copyRounds) await copyAndCatchUp(r);
    await redisBenchmark();
  }

  const figures = buildFigures();
  const goals = targets(figures);
  const finishedAt = new Date();
  const report = {
    benchmark: 'pg-redis-mirror',
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    totalSeconds: round((finishedAt.getTime() - startedAt.getTime()) / 1000, 1),
    scale: SCALE,
    machine: await machine(),
    method: {
      rounds: SCALE.rounds,
      order: `per round: none, diy, mirror (each: set up, pgbench UPDATE, pgbench INSERT, bulk, latency, tear down), then copy + catch-up (first ${SCALE.copyRounds} round(s)), then redis-benchmark; durability facts in the last round`,
      pgbench: `-n -M prepared -c 4 -j 2 -T ${SCALE.pgbenchSeconds}`,
      medians: 'median over rounds; latency percentiles over all samples of all rounds',
      bulk: 'all in Redis: from the statement returning to the keyspace event (hset: mirror, set: diy) that completes the set of all row ids, read off a raw subscription (bench/event-counter.ts); then every value is checked',
      latency: `${SCALE.latencyUpdates} sequential single-row UPDATEs per round and config; time from the query returning to the key's keyspace event (0 if the event came first). "latency": ${LATENCY_PAUSE_MS} ms pause after each key is updated (quiet system); "back-to-back": the next UPDATE is sent as soon as the previous key was updated`,
    },
    figures,
    targets: goals,
    durability: { bigRowInsert: durability, whileListenerDown: whileDown },
    extra: {
      bulkMismatches: samples.bulkMismatches,
      latencySamples: { diy: samples.latencyMs.diy.length, mirror: samples.latencyMs.mirror.length },
      latencyBackToBackSamples: { diy: samples.latencyBackToBackMs.diy.length, mirror: samples.latencyBackToBackMs.mirror.length },
      copyCorrectSample: samples.copyCorrectSample,
      catchUpCorrectSample: samples.catchUpCorrectSample,
      catchUpStatementMs: samples.catchUpStatementMs.map((x) => round(x, 1)),
      catchUpFromReadySeconds: samples.catchUpFromReadySeconds.map((x) => round(x, 3)),
      copyRowsPerSecond: samples.copyRowsPerSecond.map((x) => Math.round(x)),
      catchUpSeconds: samples.catchUpSeconds.map((x) => round(x, 3)),
      redisBenchmark: samples.redisBenchmark,
      cliStartMs: round(median(samples.cliStartMs) ?? 0, 1),
      listenArgs: LISTEN_ARGS,
    },
  };

  const table = markdownTable(figures);
  process.stdout.write(`\n${table}\n\n`);
  process.stdout.write(`Targets (mirror):\n${goals.map((g) => `- ${g.met === null ? '?' : g.met ? 'met    ' : 'NOT met'}  ${g.target}  (${g.value ?? 'n/a'})`).join('\n')}\n\n`);
  process.stdout.write(`${SCALE.name} scale, ${report.totalSeconds} s, ${(report.machine.cpus as number)} CPUs\n`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (!NO_WRITE) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `${startedAt.toISOString().replace(/:/g, '-')}.json`);
    writeFileSync(file, json);
    process.stdout.write(`results: ${file}\n`);
  }
  if (JSON_OUT !== undefined) writeFileSync(JSON_OUT, json);
  return 0;
}

let cleaning: Promise<void> | undefined;
function cleanUpOnce(): Promise<void> {
  cleaning ??= cleanUp();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanUpOnce().finally(() => process.exit(130));
  });
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  exitCode = 1;
} finally {
  await cleanUpOnce();
}
process.exit(exitCode);
