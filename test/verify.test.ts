import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { install } from '../src/install/install.js';
import { verifyMirror, isClean } from '../src/verify/verify.js';
import { syncTables } from '../src/sync/sync.js';
import { createScratch, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('verify');
});
afterAll(async () => {
  await scratch.cleanup();
});

describe('verify', () => {
  it.each(['hash', 'json'] as const)('finds each kind of drift made by hand (%s) and --repair fixes all of it', async (format) => {
    const name = `drift_${format}`;
    await scratch.pool.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text, n int)`);
    await scratch.pool.query(`INSERT INTO ${name} SELECT g, 'v' || g, g FROM generate_series(1, 5000) g`);
    const config = scratch.config([{ table: `public.${name}`, format }], { schema: `verify_${++counter}` });
    await install(config, scratch.pool);
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
    const options = { schema: config.schema, pageSize: 700 };
    expect(isClean(await verifyMirror(scratch.pool, scratch.redis, options))).toBe(true);

    const key = (id: string) => `${scratch.prefix}public.${name}:${id}`;
    await scratch.redis.del(key('10'));                                              // missing
    if (format === 'hash') await scratch.redis.hset(key('20'), 'v', 'tampered');    // stale field
    else await scratch.redis.set(key('20'), '{"id": 20}');                           // stale value
    if (format === 'hash') await scratch.redis.hset(key('21'), 'extra_field', 'x'); // stale: a field too many
    else await scratch.redis.multi().del(key('21')).hset(key('21'), 'x', 'y').exec(); // stale: wrong type
    await scratch.redis.set(key('999999'), 'stray');                                 // extra: no such row
    await scratch.redis.set(key('abc'), 'stray');                                    // extra: not even an int
    await scratch.redis.set(key('0030'), 'stray');                                   // extra: non-canonical spelling
    await scratch.pool.query(`ALTER TABLE ${name} DISABLE TRIGGER USER`);
    await scratch.pool.query(`UPDATE ${name} SET n = -1 WHERE id = 40`);            // stale: changed behind the triggers
    await scratch.pool.query(`DELETE FROM ${name} WHERE id = 41`);                  // extra: deleted behind the triggers
    await scratch.pool.query(`INSERT INTO ${name} VALUES (6000, 'new', 1)`);        // missing: inserted behind the triggers
    await scratch.pool.query(`ALTER TABLE ${name} ENABLE TRIGGER USER`);

    const [report] = await verifyMirror(scratch.pool, scratch.redis, { ...options, sampleSize: 20 });
    expect(report).toMatchObject({ rows: 5000, missing: 2, stale: 3, extra: 4, repaired: false });
    expect(report!.samples.missing.sort()).toEqual([key('10'), key('6000')].sort());
    expect(report!.samples.stale.sort()).toEqual([key('20'), key('21'), key('40')].sort());
    expect(report!.samples.extra.sort()).toEqual([key('0030'), key('41'), key('999999'), key('abc')].sort());

    const [repaired] = await verifyMirror(scratch.pool, scratch.redis, { ...options, repair: true });
    expect(repaired).toMatchObject({ missing: 2, stale: 3, extra: 4, repaired: true });
    const [after] = await verifyMirror(scratch.pool, scratch.redis, options);
    expect(after).toMatchObject({ rows: 5000, keys: 5000, missing: 0, stale: 0, extra: 0 });
    if (format === 'hash') expect(await scratch.redis.hgetall(key('40'))).toEqual({ id: '40', v: 'v40', n: '-1' });
  });

  it('checks only the tables asked for, and refuses one that is not mirrored', async () => {
    await scratch.pool.query(`CREATE TABLE only_a (id int PRIMARY KEY); CREATE TABLE only_b (id int PRIMARY KEY); INSERT INTO only_a VALUES (1); INSERT INTO only_b VALUES (1)`);
    const config = scratch.config(['public.only_a', 'public.only_b'], { schema: `verify_${++counter}` });
    await install(config, scratch.pool);
    const reports = await verifyMirror(scratch.pool, scratch.redis, { schema: config.schema, tables: [{ schema: 'public', name: 'only_b' }] });
    expect(reports.map((r) => [r.table, r.missing])).toEqual([['public.only_b', 1]]);
    await expect(verifyMirror(scratch.pool, scratch.redis, { schema: config.schema, tables: [{ schema: 'public', name: 'zzz' }] })).rejects.toThrow(/not mirrored/);
  });
});
