import type pg from 'pg';
import { isCluster, type RedisClient } from '../redis/cluster.js';
import { readWrites } from '../daemon/apply-batch.js';
import { rowToWrite, type TablePlan } from '../daemon/table-plan.js';
import { writeKeys, type KeyWrite } from '../redis/replace.js';
import { isChangeStreamKey } from '../redis/keys.js';
import { copyWriteOptions } from '../sync/copy.js';
import { scanKeys } from '../redis/scan.js';
import { isStateKey } from '../redis/state.js';
import { withApplyLock } from '../sync/apply-lock.js';
import { inTransaction } from '../db/transaction.js';

export interface TableVerifyReport {
  table: string;
  /** Rows in PostgreSQL that have a key (a hash row with all mirrored columns NULL has none). */
  rows: number;
  /** Keys found in Redis under the table's layout. */
  keys: number;
  /** Keys absent from Redis (of a table without a TTL). */
  missing: number;
  /** Keys with another value, or with a TTL other than the table's (none, or longer than its `ttl`). */
  stale: number;
  extra: number;
  /**
   * Keys absent from Redis of a table with a TTL: expired by design (or never written, which
   * Redis cannot tell apart). Not drift, and not repaired: `sync` writes every row again.
   */
  expired: number;
  /** Up to `sampleSize` keys of each kind, to show the user. */
  samples: { missing: string[]; stale: string[]; extra: string[]; expired: string[] };
  repaired: boolean;
}

export interface VerifyOptions {
  pageSize?: number;
  sampleSize?: number;
  /** Fix what is found. Each page is then compared and fixed under the exclusive apply lock of `schema`. */
  repair?: { schema: string };
}

/**
 * Compares one table: every row's expected key and value (exactly what the daemon would
 * write) against Redis, then every key under the table's layout against the rows. Memory is
 * bounded by the page size, whatever the table size.
 */
export async function verifyTable(client: pg.ClientBase, redis: RedisClient, plan: TablePlan, options: VerifyOptions = {}): Promise<TableVerifyReport> {
  const pageSize = options.pageSize ?? 2000;
  const sampleSize = options.sampleSize ?? 10;
  const report: TableVerifyReport = {
    table: plan.display,
    rows: 0,
    keys: 0,
    missing: 0,
    stale: 0,
    extra: 0,
    expired: 0,
    samples: { missing: [], stale: [], extra: [], expired: [] },
    repaired: options.repair !== undefined,
  };
  const repair = options.repair;
  // Repairs must not interleave with daemon batches (a repair could write a row the daemon
  // has just updated); a read-only comparison needs no lock.
  const step = <T>(fn: () => Promise<T>): Promise<T> => (repair === undefined ? inTransaction(client, fn) : withApplyLock(client, repair.schema, fn));
  const note = (kind: 'missing' | 'stale' | 'extra' | 'expired', key: string): void => {
    report[kind] += 1;
    if (report.samples[kind].length < sampleSize) report.samples[kind].push(key);
  };

  let last: string[] | null = null;
  let more = true;
  while (more) {
    more = await step(async () => {
      const page: pg.QueryResult<(string | null)[]> =
        last === null
          ? await client.query({ text: plan.firstPageSql, values: [pageSize], rowMode: 'array' })
          : await client.query({ text: plan.nextPageSql, values: [...last, pageSize], rowMode: 'array' });
      if (page.rows.length === 0) return false;
      const expected = page.rows.map((row) => rowToWrite(plan, row)).filter((w) => !('delete' in w));
      report.rows += expected.length;
      const actual = await readValues(redis, plan, expected.map((w) => w.key));
      const fixes: KeyWrite[] = [];
      expected.forEach((write, i) => {
        const { value, pttl } = actual[i] ?? { value: null, pttl: -2 };
        if (value === null || pttl === -2) {
          if (plan.ttl !== null) return note('expired', write.key);
          note('missing', write.key);
        } else if (!sameValue(write, value) || !sameTtl(plan.ttl, pttl)) {
          note('stale', write.key);
        } else return;
        fixes.push(write);
      });
      // Repairs are changes the daemon's consumers have not seen: announce them (a copy does not).
      if (repair !== undefined) await writeKeys(redis, fixes, undefined, { ...copyWriteOptions(plan), events: plan.events });
      last = page.rows[page.rows.length - 1]!.slice(0, plan.keyColumns.length) as string[];
      return page.rows.length === pageSize;
    });
  }

  for await (const page of scanKeys(redis, plan.layout.pattern, pageSize)) {
    // A key template broad enough to match the daemon's own state hash must not count it.
    // Nor the change streams (of this table or another under the same prefix).
    const keys = page.filter((key) => !isStateKey(key) && !isChangeStreamKey(plan.prefix, key));
    report.keys += keys.length;
    await step(async () => {
      const extra = await extraKeys(client, plan, keys);
      for (const key of extra) note('extra', key);
      if (repair !== undefined && extra.length > 0) {
        await writeKeys(redis, extra.map((key) => ({ key, delete: true as const })), undefined, { events: plan.events });
      }
    });
  }
  return report;
}

type RedisValue = Record<string, string> | string | null;

/** A key's value and its PTTL (-1: no TTL, -2: no key, as Redis answers). */
interface RedisEntry {
  value: RedisValue;
  pttl: number;
}

async function readValues(redis: RedisClient, plan: TablePlan, keys: string[]): Promise<RedisEntry[]> {
  if (keys.length === 0) return [];
  let results: [Error | null, unknown][];
  if (isCluster(redis)) {
    // A cluster pipeline must stay on one node; separate commands are routed each to its
    // slot's master, and ioredis still writes them out without waiting for replies.
    const settled = await Promise.allSettled(keys.flatMap((key) => [plan.format === 'json' ? redis.get(key) : redis.hgetall(key), redis.pttl(key)]));
    results = settled.map((s): [Error | null, unknown] => {
      if (s.status === 'fulfilled') return [null, s.value];
      // As in a pipeline's results: a wrong type is a finding; a lost server is a failure.
      if (s.reason instanceof Error && s.reason.message.startsWith('WRONGTYPE')) return [s.reason, null];
      throw s.reason;
    });
  } else {
    const pipeline = redis.pipeline();
    for (const key of keys) {
      if (plan.format === 'json') pipeline.get(key);
      else pipeline.hgetall(key);
      pipeline.pttl(key);
    }
    results = (await pipeline.exec()) ?? [];
  }
  const entries: RedisEntry[] = [];
  for (let i = 0; i + 1 < results.length; i += 2) {
    const [error, value] = results[i]!;
    entries.push({ value: toValue(plan, error, value), pttl: Number(results[i + 1]![1]) });
  }
  return entries;
}

function toValue(plan: TablePlan, error: Error | null, value: unknown): RedisValue {
  // WRONGTYPE (a string where a hash belongs, or the reverse): present but wrong.
  if (error !== null) return '\u0000wrong type';
  if (plan.format === 'json') return (value as string | null) ?? null;
  const hash = value as Record<string, string>;
  return Object.keys(hash).length === 0 ? null : hash;
}

/** A table with a TTL wants one on every key, no longer than its own; a table without, none. */
function sameTtl(ttl: number | null, pttl: number): boolean {
  return ttl === null ? pttl === -1 : pttl > 0 && pttl <= ttl * 1000;
}

function sameValue(expected: KeyWrite, actual: Exclude<RedisValue, null>): boolean {
  if ('json' in expected) return actual === expected.json;
  if (!('hash' in expected) || typeof actual === 'string') return false;
  const fields = Object.keys(actual);
  if (fields.length * 2 !== expected.hash.length) return false;
  for (let i = 0; i < expected.hash.length; i += 2) {
    if (actual[expected.hash[i]!] !== expected.hash[i + 1]) return false;
  }
  return true;
}

/** Keys under the layout whose row does not exist (or that no row would produce). */
async function extraKeys(client: pg.ClientBase, plan: TablePlan, keys: string[]): Promise<string[]> {
  const extra: string[] = [];
  const candidates: { key: string; values: string[] }[] = [];
  for (const key of keys) {
    const values = plan.layout.parse(key);
    if (values === null || plan.layout.build(values) !== key) extra.push(key);
    else candidates.push({ key, values });
  }
  if (candidates.length === 0) return extra;
  let writes = await readOrNull(client, plan, candidates.map((c) => c.values));
  if (writes === null) {
    // One unparsable key value (text where the key is an integer) fails the whole read:
    // check the keys one by one so only the bad ones count as extra.
    writes = [];
    for (const c of candidates) writes.push(...((await readOrNull(client, plan, [c.values])) ?? []));
  }
  // Rows come back in no particular order, each under its canonical key: a key that no
  // existing row produces (gone, or a non-canonical spelling such as "01") is extra.
  const present = new Set(writes.filter((w) => !('delete' in w)).map((w) => w.key));
  for (const c of candidates) if (!present.has(c.key)) extra.push(c.key);
  return extra;
}

/** readWrites, or null when a key value cannot be cast to its column type (the transaction survives). */
async function readOrNull(client: pg.ClientBase, plan: TablePlan, keys: string[][]): Promise<KeyWrite[] | null> {
  await client.query('SAVEPOINT prm_read');
  try {
    const writes = await readWrites(client, plan, keys);
    await client.query('RELEASE SAVEPOINT prm_read');
    return writes;
  } catch (error) {
    if (!isDataError(error)) throw error;
    await client.query('ROLLBACK TO SAVEPOINT prm_read');
    return null;
  }
}

function isDataError(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return typeof code === 'string' && code.startsWith('22');
}
