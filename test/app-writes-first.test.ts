/**
 * The application's writes come first: whatever the mirror's state (daemon stopped in the
 * middle of a long write run, a LISTEN session on the channel that never reads), the
 * application's INSERT/UPDATE/DELETE never fail, and the mirror converges afterwards.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { clientConfig } from '../src/db/connect.js';
import { install } from '../src/install/install.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createScratch, expectMirrorClean, settle, sleep, waitUntil, type Scratch } from './helpers/scratch.js';
import { spawnListen, type ListenChild } from './helpers/listen-child.js';
import { writeLoop, type WriteCounts } from './helpers/writers.js';

let scratch: Scratch;
const daemons: ListenChild[] = [];
let stalled: pg.Client | undefined;

beforeAll(async () => {
  scratch = await createScratch('appfirst');
});
afterAll(async () => {
  for (const d of daemons) await d.kill();
  stalled?.connection.stream.destroy();
  await scratch.cleanup();
});

it('never fails the application while the daemon is stopped mid-run and a listener on the channel never reads', async () => {
  await scratch.pool.query(`CREATE TABLE orders (id int PRIMARY KEY, v int NOT NULL, note text)`);
  const config = scratch.config(['public.orders']);
  await install(config, scratch.pool);
  const listen = (): ListenChild => {
    const d = spawnListen({ databaseUrl: scratch.databaseUrl, redisUrl: scratch.redisUrl, prefix: scratch.prefix, extra: ['--poll-interval', '200'] });
    daemons.push(d);
    return d;
  };
  let daemon = listen();
  await waitUntil('the daemon listens', () => daemon.logs().some((l) => l.msg.startsWith('listening')), 20_000);

  // Someone else LISTENs on the daemon's channel and then stops reading its socket: its
  // backend can no longer deliver, and the server-wide notification queue cannot advance past it.
  stalled = new pg.Client(clientConfig(scratch.databaseUrl, 'stalled listener'));
  await stalled.connect();
  await stalled.query(`LISTEN ${quoteIdent(config.schema)}`);
  let received = 0;
  stalled.on('notification', () => received++);
  stalled.on('error', () => undefined);
  stalled.connection.stream.pause();

  const counts: WriteCounts = { transactions: 0, changed: 0, errors: [] };
  let stop = false;
  const writers = [1, 2, 3].map((seed) => writeLoop(scratch.pool, 'orders', 5000, seed, () => stop, counts));
  // One writer with bulk statements too: a thousand keys per journal row.
  const bulk = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        await scratch.pool.query(`INSERT INTO orders SELECT g, ${i}, 'bulk' FROM generate_series(${(i % 5) * 1000 + 1}, ${(i % 5) * 1000 + 1000}) g ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`);
        counts.transactions++;
      } catch (error) {
        counts.errors.push(error instanceof Error ? error.message : String(error));
      }
      await sleep(50);
    }
  })();
  try {
    await sleep(2000);
    const stopped = await daemon.stop();
    expect(stopped.code, stopped.stderr).toBe(0);
    const before = counts.transactions;
    await sleep(3000);
    expect(counts.transactions - before).toBeGreaterThan(100);
    daemon = listen();
    await sleep(2000);
  } finally {
    stop = true;
    await Promise.all([...writers, bulk]);
  }
  expect(counts.errors).toEqual([]);
  expect(counts.transactions).toBeGreaterThan(500);

  await settle(scratch, config, 60_000);
  await expectMirrorClean(scratch, config);
  expect(daemon.alive(), daemon.cli.stderr).toBe(true);

  // The stalled listener was real: notifications were waiting for it all along.
  stalled.connection.stream.resume();
  await waitUntil('the stalled listener gets its backlog', () => received > 0, 10_000);
}, 60_000);
