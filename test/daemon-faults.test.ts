/**
 * Faults the daemon must survive alone, losing nothing: its sessions killed by the server,
 * a notification that never reaches it, and the daemon itself killed in the middle of a batch.
 * The daemon runs as `listen` in a child process, as users run it, so a crash shows as an exit.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { wakeLockHeld } from './helpers/locks.js';
import type { Config } from '../src/config/load.js';
import { install } from '../src/install/install.js';
import { daemonApplicationName, listenApplicationName } from '../src/daemon/app-names.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createScratch, expectMirrorClean, settle, sleep, waitUntil, type Scratch } from './helpers/scratch.js';
import { spawnListen, type ListenChild } from './helpers/listen-child.js';
import { writeLoop, type WriteCounts } from './helpers/writers.js';

let scratch: Scratch;
let children: ListenChild[] = [];
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('faults');
});
afterEach(async () => {
  for (const child of children.splice(0)) await child.kill();
});
afterAll(async () => {
  await scratch.cleanup();
});

/** A table `name (id, v, note)` under a tool schema of the test's own. */
async function mirrored(name: string): Promise<Config> {
  await scratch.pool.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v int NOT NULL, note text)`);
  const config = scratch.config([`public.${name}`], { schema: `faults_${++counter}` });
  await install(config, scratch.pool);
  return config;
}

function listen(config: Config, extra: string[] = []): ListenChild {
  const child = spawnListen({ databaseUrl: scratch.databaseUrl, redisUrl: scratch.redisUrl, prefix: scratch.prefix, extra: ['--schema', config.schema, ...extra] });
  children.push(child);
  return child;
}

async function listening(child: ListenChild): Promise<void> {
  await waitUntil('the daemon listens', () => child.logs().some((l) => l.msg.startsWith('listening')) || !child.alive(), 20_000);
  expect(child.alive(), child.cli.stderr).toBe(true);
}

/** The daemon sleeps holding its wake lock: from here only a NOTIFY (or the poll) wakes it. */
async function idle(config: Config): Promise<void> {
  await waitUntil('the daemon is idle', () => wakeLockHeld(scratch.pool, config.schema), 20_000);
}

async function terminate(applicationName: string): Promise<number> {
  const r = await scratch.pool.query<{ pid: number }>(
    `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`,
    [applicationName],
  );
  return r.rowCount ?? 0;
}

const key = (table: string, id: number): string => `${scratch.prefix}public.${table}:${id}`;

it('survives pg_terminate_backend of its worker and of its LISTEN session, idle and while the application writes', async () => {
  const config = await mirrored('term');
  // A ten-minute poll: a change made while the daemon is idle arrives only if it is notified.
  const daemon = listen(config, ['--poll-interval', '600000']);
  await listening(daemon);
  await scratch.pool.query(`INSERT INTO term SELECT g, g, 'start' FROM generate_series(1, 200) g`);
  await settle(scratch, config);
  await idle(config);

  // Idle: the worker holds the wake lock; killing it frees the lock, so triggers stop notifying.
  expect(await terminate(daemonApplicationName(config.schema))).toBeGreaterThan(0);
  await sleep(300);
  expect(daemon.alive(), daemon.cli.stderr).toBe(true);
  await idle(config);
  await scratch.pool.query(`UPDATE term SET note = 'after worker' WHERE id = 1`);
  await waitUntil('a change after the worker was killed', async () => (await scratch.redis.hget(key('term', 1), 'note')) === 'after worker', 5000);

  // The same, while the application writes.
  const counts: WriteCounts = { transactions: 0, changed: 0, errors: [] };
  let stop = false;
  const writers = [1, 2].map((seed) => writeLoop(scratch.pool, 'term', 400, seed, () => stop, counts));
  try {
    for (let round = 0; round < 3; round++) {
      await sleep(400);
      await terminate(daemonApplicationName(config.schema));
      await sleep(400);
      expect(await terminate(listenApplicationName(config.schema))).toBe(1);
    }
    await sleep(500);
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  expect(counts.errors).toEqual([]);
  expect(counts.transactions).toBeGreaterThan(100);
  await settle(scratch, config, 30_000);
  await expectMirrorClean(scratch, config);
  expect(daemon.alive(), daemon.cli.stderr).toBe(true);

  // LISTEN was issued again on the new session: an idle change is still notified.
  await idle(config);
  // (An upsert on an id the writers never touch: an UPDATE of a row they deleted changes nothing.)
  await scratch.pool.query(`INSERT INTO term VALUES (10000, 0, 'after listener') ON CONFLICT (id) DO UPDATE SET note = EXCLUDED.note`);
  await waitUntil('a change after the LISTEN session was killed', async () => (await scratch.redis.hget(key('term', 10000), 'note')) === 'after listener', 5000);
  await expectMirrorClean(scratch, config);
  expect(daemon.logs().some((l) => l.msg === 'LISTEN connection lost; reconnecting')).toBe(true);
}, 60_000);

it('picks up a change whose notification never came, at the next safety poll', async () => {
  const config = await mirrored('missed');
  const daemon = listen(config, ['--poll-interval', '300']);
  await listening(daemon);
  await scratch.pool.query(`INSERT INTO missed SELECT g, g, 'start' FROM generate_series(1, 20) g`);
  await settle(scratch, config);
  await idle(config);

  // A change whose trigger did not run, journaled by hand without NOTIFY: as if the wake-up had
  // been lost (for example sent while the LISTEN session was reconnecting).
  const client = await scratch.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL session_replication_role = replica`);
    await client.query(`UPDATE missed SET note = 'silent' WHERE id = 5`);
    await client.query(`DELETE FROM missed WHERE id = 6`);
    await client.query(`INSERT INTO ${quoteIdent(config.schema)}.journal (rel, keys) VALUES ('public.missed'::regclass, ARRAY['5', '6'])`);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  await waitUntil('the silent change arrives', async () => (await scratch.redis.hget(key('missed', 5), 'note')) === 'silent', 5000);
  expect(await scratch.redis.exists(key('missed', 6))).toBe(0);
  await settle(scratch, config);
  await expectMirrorClean(scratch, config);
}, 30_000);

it('loses nothing when killed with SIGKILL in the middle of a drain, and started again', async () => {
  const config = await mirrored('killed');
  // A backlog of 200 journal rows of 1000 keys, written while no daemon runs.
  await scratch.pool.query(`INSERT INTO killed SELECT g, g, repeat('x', 100) FROM generate_series(1, 200000) g`);
  const journalRows = async (): Promise<number> => Number((await scratch.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteIdent(config.schema)}.journal`)).rows[0]!.n);
  expect(await journalRows()).toBe(200);

  const first = listen(config, ['--batch-size', '1000']);
  await waitUntil('part of the backlog is drained', async () => (await journalRows()) < 170 || !first.alive(), 30_000);
  const result = await first.kill();
  expect(result.signal).toBe('SIGKILL');
  const left = await journalRows();
  expect(left).toBeGreaterThan(0);

  // Changes while it is down, to keys it has and has not applied yet.
  await scratch.pool.query(`UPDATE killed SET v = -v, note = 'changed' WHERE id % 1000 = 7`);
  await scratch.pool.query(`DELETE FROM killed WHERE id % 1000 = 9`);

  const second = listen(config, ['--batch-size', '1000']);
  await settle(scratch, config, 60_000);
  expect(second.alive(), second.cli.stderr).toBe(true);
  expect(await scratch.redis.hget(key('killed', 199_007), 'v')).toBe('-199007');
  const reports = await expectMirrorClean(scratch, config);
  expect(reports[0]!.rows).toBe(199_800);
}, 90_000);
