/**
 * A long outage: the journal holds a quarter of a million keys when the daemon starts. It must
 * drain them in batches no bigger than --batch-size, in bounded memory, and lose nothing.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { install } from '../src/install/install.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createScratch, expectMirrorClean, settle, type Scratch } from './helpers/scratch.js';
import { spawnListen, type ListenChild } from './helpers/listen-child.js';

let scratch: Scratch;
let daemon: ListenChild | undefined;

beforeAll(async () => {
  scratch = await createScratch('backlog');
});
afterAll(async () => {
  await daemon?.kill();
  await scratch.cleanup();
});

/** Peak resident set of a live process, in MB (Linux). */
function peakRssMb(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmHWM for ${pid}`);
  return Number(match[1]) / 1024;
}

const ROWS = 250_000;
/** Not a divisor of the batch size: journal rows must not carry a batch past it. */
const ROWS_PER_STATEMENT = 700;
const BATCH_SIZE = 2000;

it('drains a 250k-key backlog in batches of at most --batch-size keys, in bounded memory', async () => {
  await scratch.pool.query(`CREATE TABLE backlog (id int PRIMARY KEY, v int NOT NULL, payload text)`);
  const config = scratch.config(['public.backlog']);
  await install(config, scratch.pool);
  // Written while no daemon runs; 400 bytes a row, so holding the backlog at once would show.
  await scratch.pool.query(`
    DO $$ BEGIN
      FOR i IN 0..${Math.ceil(ROWS / ROWS_PER_STATEMENT) - 1} LOOP
        INSERT INTO backlog SELECT g, g, repeat(md5(g::text), 12) || 'tail'
          FROM generate_series(i * ${ROWS_PER_STATEMENT} + 1, least((i + 1) * ${ROWS_PER_STATEMENT}, ${ROWS})) g;
      END LOOP;
    END $$`);
  const keys = await scratch.pool.query<{ n: string }>(`SELECT sum(array_length(keys, 1)) AS n FROM ${quoteIdent(config.schema)}.journal`);
  expect(Number(keys.rows[0]!.n)).toBe(ROWS);

  daemon = spawnListen({
    databaseUrl: scratch.databaseUrl,
    redisUrl: scratch.redisUrl,
    prefix: scratch.prefix,
    extra: ['--batch-size', String(BATCH_SIZE), '--log-level', 'debug'],
  });
  await settle(scratch, config, 120_000);
  const peak = peakRssMb(daemon.pid);
  const result = await daemon.stop();
  expect(result.code, result.stderr).toBe(0);

  const batches = daemon.logs().filter((l) => l.msg === 'batch read');
  const sizes = batches.map((l) => Number(l.keys));
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(ROWS);
  expect(Math.max(...sizes)).toBeLessThanOrEqual(BATCH_SIZE);
  expect(batches.length).toBeLessThan((ROWS / ROWS_PER_STATEMENT) * 1.01);
  // Measured: ~90 MB for one batch, ~150 MB for 50k keys, ~170 MB for 250k (the heap grows
  // before the collector catches up, then stays). 250k rows of 400 bytes held at once would
  // be 100 MB of text alone, two or three times that as strings and frames.
  expect(peak).toBeLessThan(250);
  console.log(`backlog of ${ROWS} keys: ${batches.length} batches, largest ${Math.max(...sizes)} keys, daemon peak RSS ${peak.toFixed(0)} MB`);

  const reports = await expectMirrorClean(scratch, config);
  expect(reports[0]!.rows).toBe(ROWS);
}, 150_000);
