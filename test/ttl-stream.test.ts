import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../src/redis/cluster.js';
import { readConfigFile, type Config, type TableConfig } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install } from '../src/install/install.js';
import { syncTables } from '../src/sync/sync.js';
import { writeKeys } from '../src/redis/replace.js';
import { connectRedis } from '../src/redis/connect.js';
import { verifyMirror, isClean } from '../src/verify/verify.js';
import { TestRedisServer } from './helpers/redis-server.js';
import { createScratch, expectMirrorClean, installAndStart, settle, startDaemon, verify, waitUntil, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
let daemons: MirrorDaemon[] = [];
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('ttlstream');
});
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
});
afterAll(async () => {
  await scratch.cleanup();
});

async function mirror(ddl: string, tables: (Partial<TableConfig> & { table: string })[]): Promise<Config> {
  await scratch.pool.query(ddl);
  const config = scratch.config(tables, { schema: `ttlstream_${++counter}` });
  daemons.push(await installAndStart(scratch, config));
  return config;
}

const key = (table: string, ...values: string[]): string => `${scratch.prefix}${table}:${values.join(':')}`;
const streamOf = (table: string): string => `${scratch.prefix}changes:${table}`;

/** The stream's entries as [op, key] pairs, oldest first. */
async function entries(redis: RedisClient, stream: string): Promise<[string, string][]> {
  const raw = await redis.xrange(stream, '-', '+');
  return raw.map(([, fields]) => {
    const f = new Map<string, string>();
    for (let i = 0; i < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
    return [f.get('op')!, f.get('key')!];
  });
}

describe('config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'prm-ttl-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const read = (table: object) => {
    const path = join(dir, 'pg-redis-mirror.json');
    writeFileSync(path, JSON.stringify({ tables: [{ table: 'public.t', ...table }] }));
    return () => readConfigFile(path);
  };

  it('refuses a TTL that is not a positive whole number of seconds, in one line', () => {
    expect(read({ ttl: 0 })).toThrow(/tables\[0\]\.ttl: must be a positive number of seconds$/);
    expect(read({ ttl: 1.5 })).toThrow(/tables\[0\]\.ttl: must be a whole number of seconds$/);
    expect(read({ stream: { maxLen: 0 } })).toThrow(/tables\[0\]\.stream\.maxLen: must be at least 1$/);
    expect(read({ stream: { maxlen: 5 } })).toThrow(/unknown field "maxlen"/);
    expect(read({ publish: '' })).toThrow(/tables\[0\]\.publish: must not be empty$/);
    expect(read({ ttl: 60, stream: {}, publish: 'ch' })()).toMatchObject({ tables: [{ ttl: 60, stream: {}, publish: 'ch' }] });
  });
});

describe('TTL', () => {
  it('sets the TTL with every daemon write (hash and json), and verify accepts it', async () => {
    const config = await mirror(`CREATE TABLE th (id int PRIMARY KEY, v text); CREATE TABLE tj (id int PRIMARY KEY, v text)`, [
      { table: 'public.th', ttl: 100 },
      { table: 'public.tj', ttl: 50, format: 'json' },
    ]);
    await scratch.pool.query(`INSERT INTO th SELECT g, 'v' || g FROM generate_series(1, 20) g; INSERT INTO tj SELECT g, 'v' || g FROM generate_series(1, 20) g`);
    await settle(scratch, config);
    for (const id of ['1', '20']) {
      const h = await scratch.redis.pttl(key('public.th', id));
      expect(h).toBeGreaterThan(0);
      expect(h).toBeLessThanOrEqual(100_000);
      const j = await scratch.redis.pttl(key('public.tj', id));
      expect(j).toBeGreaterThan(0);
      expect(j).toBeLessThanOrEqual(50_000);
    }
    // An update in place (HSET on the existing hash) sets it again.
    await scratch.redis.expire(key('public.th', '3'), 5);
    await scratch.pool.query(`UPDATE th SET v = 'new' WHERE id = 3`);
    await settle(scratch, config);
    expect(await scratch.redis.pttl(key('public.th', '3'))).toBeGreaterThan(5_000);
    await expectMirrorClean(scratch, config);

    // A key that lost its TTL is stale; an absent key of a TTL table is expired, not drift.
    await scratch.redis.persist(key('public.th', '4'));
    await scratch.redis.del(key('public.th', '5'));
    const reports = await verify(scratch, config);
    const th = reports.find((r) => r.table === 'public.th')!;
    expect(th).toMatchObject({ stale: 1, missing: 0, expired: 1, samples: { stale: [key('public.th', '4')], expired: [key('public.th', '5')] } });
    expect(isClean(reports)).toBe(false);
    await verifyMirror(scratch.pool, scratch.redis, { schema: config.schema, repair: true });
    expect(await scratch.redis.pttl(key('public.th', '4'))).toBeGreaterThan(0);
    // Not written again by a repair: absent by design, until the row changes or a sync.
    expect(await scratch.redis.exists(key('public.th', '5'))).toBe(0);
    const after = await expectMirrorClean(scratch, config);
    expect(after.find((r) => r.table === 'public.th')!.expired).toBe(1);
  });

  it('sync copies with the TTL, and removes a TTL the table no longer has', async () => {
    await scratch.pool.query(`CREATE TABLE ts (id int PRIMARY KEY, v text); INSERT INTO ts SELECT g, 'v' || g FROM generate_series(1, 3000) g`);
    const config = scratch.config([{ table: 'public.ts', ttl: 30, stream: { maxLen: 100 } }], { schema: `ttlstream_${++counter}` });
    await install(config, scratch.pool);
    const [copied] = await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
    expect(copied!.rows).toBe(3000);
    for (const id of ['1', '1500', '3000']) {
      const pttl = await scratch.redis.pttl(key('public.ts', id));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(30_000);
    }
    // A copy is not a change: it does not flood the stream.
    expect(await scratch.redis.exists(streamOf('public.ts'))).toBe(0);
    await expectMirrorClean(scratch, config);

    // Dropping the option changes the spec; the next copy removes the TTLs.
    const plain = { ...config, tables: [{ ...config.tables[0]!, ttl: undefined }] };
    delete plain.tables[0]!.ttl;
    expect((await install(plain, scratch.pool)).tables).toEqual([{ table: 'public.ts', action: 'update', reason: 'options changed' }]);
    expect(isClean(await verify(scratch, plain))).toBe(false);
    await syncTables(scratch.pool, scratch.redis, { schema: plain.schema });
    expect(await scratch.redis.pttl(key('public.ts', '1500'))).toBe(-1);
    await expectMirrorClean(scratch, plain);
  });

  it('a copy removes a TTL left on a key (sending PERSIST only where a key of its database has a TTL)', async () => {
    // A server of the test's own, so that only this test's keys count; the mirror in database 3.
    const server = await TestRedisServer.start();
    const redis = await connectRedis(`${server.url}/3`);
    const other = await connectRedis(`${server.url}/0`);
    try {
      await scratch.pool.query(`CREATE TABLE tp (id int PRIMARY KEY, v text); INSERT INTO tp SELECT g, 'v' || g FROM generate_series(1, 50) g`);
      const config = scratch.config(['public.tp'], { schema: `ttlstream_${++counter}` });
      await install(config, scratch.pool);
      const persists = async (): Promise<number> => Number(/cmdstat_persist:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);

      // A TTL in another database only: none here, no PERSIST.
      await other.set('elsewhere', '1', 'EX', 60);
      await syncTables(scratch.pool, redis, { schema: config.schema });
      expect(await persists()).toBe(0);
      expect(await redis.pttl(key('public.tp', '7'))).toBe(-1);

      // A key of the table left with a TTL (as by an earlier ttl option): removed, by PERSIST.
      await redis.expire(key('public.tp', '7'), 60);
      await syncTables(scratch.pool, redis, { schema: config.schema });
      expect(await redis.pttl(key('public.tp', '7'))).toBe(-1);
      expect(await persists()).toBe(50);
      const reports = await verifyMirror(scratch.pool, redis, { schema: config.schema });
      expect(isClean(reports)).toBe(true);
    } finally {
      redis.disconnect();
      other.disconnect();
      await server.stop();
    }
  });

  it('install is idempotent, and a changed ttl, stream or publish option updates the table', async () => {
    await scratch.pool.query(`CREATE TABLE ti (id int PRIMARY KEY)`);
    const base = scratch.config([{ table: 'public.ti' }], { schema: `ttlstream_${++counter}` });
    const withOptions = (extra: Partial<TableConfig>): Config => ({ ...base, tables: [{ ...base.tables[0]!, ...extra }] });
    expect((await install(base, scratch.pool)).tables[0]!.action).toBe('create');
    for (const options of [{ ttl: 10 }, { ttl: 20 }, { ttl: 20, stream: { maxLen: 5 } }, { ttl: 20, stream: { maxLen: 5 }, publish: 'ch' }]) {
      expect((await install(withOptions(options), scratch.pool)).tables[0]).toMatchObject({ action: 'update', reason: 'options changed' });
      expect((await install(withOptions(options), scratch.pool)).tables[0]!.action).toBe('unchanged');
    }
    expect((await install(base, scratch.pool)).tables[0]).toMatchObject({ action: 'update', reason: 'options changed' });
  });

  it('writeKeys: a TTL, none left as is, or persist', async () => {
    const k = (name: string): string => `${scratch.prefix}wk:${name}`;
    await scratch.redis.hset(k('kept'), 'a', '1');
    await scratch.redis.expire(k('kept'), 1000);
    await scratch.redis.hset(k('persisted'), 'a', '1');
    await scratch.redis.expire(k('persisted'), 1000);
    await writeKeys(scratch.redis, [{ key: k('kept'), hash: ['a', '2'] }]);
    await writeKeys(scratch.redis, [{ key: k('persisted'), hash: ['a', '2'] }], undefined, { ttl: 'persist' });
    await writeKeys(scratch.redis, [{ key: k('ttl'), hash: ['a', '2'] }, { key: k('json'), json: '{}' }], undefined, { ttl: 7 });
    expect(await scratch.redis.ttl(k('kept'))).toBeGreaterThan(900);
    expect(await scratch.redis.ttl(k('persisted'))).toBe(-1);
    expect(await scratch.redis.pttl(k('ttl'))).toBeLessThanOrEqual(7000);
    expect(await scratch.redis.pttl(k('json'))).toBeGreaterThan(0);
  });
});

describe('change stream and PUBLISH', () => {
  it('appends insert, update, delete, key change and truncate in order, each after its key is written', async () => {
    const channel = `${scratch.prefix}events`;
    const subscriber = await connectRedis(scratch.redisUrl);
    const published: { table: string; op: string; key: string }[] = [];
    subscriber.on('message', (ch: string, message: string) => {
      if (ch === channel) published.push(JSON.parse(message) as { table: string; op: string; key: string });
    });
    await subscriber.subscribe(channel);
    try {
      const config = await mirror(`CREATE TABLE ev (id int PRIMARY KEY, v text)`, [{ table: 'public.ev', stream: { maxLen: 1000 }, publish: channel }]);
      const stream = streamOf('public.ev');
      const k = (id: string): string => key('public.ev', id);
      await scratch.pool.query(`INSERT INTO ev VALUES (1, 'a'), (2, 'b')`);
      await settle(scratch, config);
      await scratch.pool.query(`UPDATE ev SET v = 'c' WHERE id = 1`);
      await settle(scratch, config);
      await scratch.pool.query(`DELETE FROM ev WHERE id = 1`);
      await settle(scratch, config);
      await scratch.pool.query(`UPDATE ev SET id = 20 WHERE id = 2`);
      await settle(scratch, config);
      await scratch.pool.query(`TRUNCATE ev`);
      await settle(scratch, config);
      await scratch.pool.query(`INSERT INTO ev VALUES (3, 'd')`);
      await settle(scratch, config);

      const got = await entries(scratch.redis, stream);
      const sorted = (pairs: [string, string][]): [string, string][] => [...pairs].sort((a, b) => a[1].localeCompare(b[1]));
      // Keys of one batch come in no particular order; batches do.
      expect(sorted(got.slice(0, 2))).toEqual([['upsert', k('1')], ['upsert', k('2')]]);
      expect(got[2]).toEqual(['upsert', k('1')]);
      expect(got[3]).toEqual(['delete', k('1')]);
      expect(sorted(got.slice(4, 6))).toEqual([['upsert', k('20')], ['delete', k('2')]].sort((a, b) => a[1]!.localeCompare(b[1]!)));
      expect(got[6]).toEqual(['truncate', `${scratch.prefix}public.ev:*`]);
      expect(got[7]).toEqual(['upsert', k('3')]);
      expect(got).toHaveLength(8);

      await waitUntil('the subscriber receives every event', () => published.length === 8);
      expect(published.map((p) => [p.op, p.key])).toEqual(got);
      expect(new Set(published.map((p) => p.table))).toEqual(new Set(['public.ev']));
      await expectMirrorClean(scratch, config);
    } finally {
      subscriber.disconnect();
    }
  });

  it('a consumer blocked on XREAD finds every upserted key already written', async () => {
    const config = await mirror(`CREATE TABLE rd (id int PRIMARY KEY, v text)`, [{ table: 'public.rd', stream: { maxLen: 10_000 } }]);
    const stream = streamOf('public.rd');
    const consumer = await connectRedis(scratch.redisUrl);
    const seen: string[] = [];
    let absent = 0;
    let stop = false;
    const reading = (async () => {
      let last = '0';
      while (!stop) {
        const reply = await consumer.xread('COUNT', 100, 'BLOCK', 100, 'STREAMS', stream, last);
        for (const [, messages] of reply ?? []) {
          for (const [id, fields] of messages) {
            last = id;
            const k = fields[fields.indexOf('key') + 1]!;
            seen.push(k);
            if ((await scratch.redis.exists(k)) === 0) absent += 1;
          }
        }
      }
    })();
    try {
      for (let i = 1; i <= 200; i++) await scratch.pool.query(`INSERT INTO rd VALUES ($1, 'x')`, [i]);
      await settle(scratch, config);
      await waitUntil('the consumer reads 200 events', () => seen.length >= 200);
    } finally {
      stop = true;
      await reading;
      consumer.disconnect();
    }
    expect(new Set(seen).size).toBe(200);
    expect(absent).toBe(0);
  });

  it('trims the stream to about maxLen entries', async () => {
    const config = await mirror(`CREATE TABLE tr (id int PRIMARY KEY)`, [{ table: 'public.tr', stream: { maxLen: 10 } }]);
    await scratch.pool.query(`INSERT INTO tr SELECT generate_series(1, 2000)`);
    await settle(scratch, config);
    const length = await scratch.redis.xlen(streamOf('public.tr'));
    // MAXLEN ~ trims whole stream nodes (100 entries each by default), never below maxLen.
    expect(length).toBeGreaterThanOrEqual(10);
    expect(length).toBeLessThanOrEqual(250);
    // The last entry is the last change.
    const [last] = await scratch.redis.xrevrange(streamOf('public.tr'), '+', '-', 'COUNT', 1);
    expect(last![1]).toEqual(['op', 'upsert', 'key', expect.stringMatching(/^.*public\.tr:\d+$/)]);
    await expectMirrorClean(scratch, config);
  });

  it('a broad key template: TRUNCATE and verify --repair leave the change stream alone', async () => {
    // A prefix of its own: the template matches every key under it.
    const prefix = `${scratch.prefix}bt:`;
    const config = await mirror(`CREATE TABLE bt (id int PRIMARY KEY, v text)`, [{ table: 'public.bt', prefix, keyTemplate: '{id}', stream: { maxLen: 100 } }]);
    const stream = `${prefix}changes:public.bt`;
    await scratch.pool.query(`INSERT INTO bt VALUES (1, 'a')`);
    await settle(scratch, config);
    const reports = await verifyMirror(scratch.pool, scratch.redis, { schema: config.schema, repair: true });
    expect(reports[0]).toMatchObject({ extra: 0, keys: 1 });
    await scratch.pool.query(`TRUNCATE bt`);
    await settle(scratch, config);
    expect(await entries(scratch.redis, stream)).toEqual([
      ['upsert', `${prefix}1`],
      ['truncate', `${prefix}*`],
    ]);
    await expectMirrorClean(scratch, config);
    // Restarting reads the options from the registry: no config file needed.
    await Promise.all(daemons.map((d) => d.stop()));
    daemons = [await startDaemon(config)];
    await scratch.pool.query(`INSERT INTO bt VALUES (2, 'b')`);
    await settle(scratch, config);
    expect((await entries(scratch.redis, stream)).at(-1)).toEqual(['upsert', `${prefix}2`]);
  });
});
