import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install, uninstall } from '../src/install/install.js';
import { readStatus } from '../src/status/status.js';
import { syncTables } from '../src/sync/sync.js';
import { formatTableName } from '../src/config/table-name.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createScratch, expectMirrorClean, settle, startDaemon, verify, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
let daemons: MirrorDaemon[] = [];
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('partitioned');
});
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
});
afterAll(async () => {
  await scratch.cleanup();
});

/**
 * orders_<n>, partitioned by region: 'eu' and 'us' are plain partitions, 'as' is itself
 * partitioned by id (below 100, and 100 up to 1000).
 */
async function createOrders(): Promise<string> {
  const t = `orders_${++counter}`;
  await scratch.pool.query(`
    CREATE TABLE ${t} (region text, id int, v int, note text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE ${t}_eu PARTITION OF ${t} FOR VALUES IN ('eu');
    CREATE TABLE ${t}_us PARTITION OF ${t} FOR VALUES IN ('us');
    CREATE TABLE ${t}_as PARTITION OF ${t} FOR VALUES IN ('as') PARTITION BY RANGE (id);
    CREATE TABLE ${t}_as_lo PARTITION OF ${t}_as FOR VALUES FROM (0) TO (100);
    CREATE TABLE ${t}_as_hi PARTITION OF ${t}_as FOR VALUES FROM (100) TO (1000);
    INSERT INTO ${t} SELECT (ARRAY['eu', 'us', 'as'])[1 + g % 3], g, g, 'n' || g FROM generate_series(1, 300) g;`);
  return t;
}

async function mirror(table: string): Promise<Config> {
  const config = scratch.config([`public.${table}`], { schema: `part_${counter}` });
  await install(config, scratch.pool);
  await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
  daemons.push(await startDaemon(config));
  return config;
}

const key = (table: string, region: string, id: number): string => `${scratch.prefix}public.${table}:${region}:${id}`;

/** Triggers of this install's capture functions, by table (cloned ones left out). */
async function ourTriggers(config: Config): Promise<string[]> {
  const result = await scratch.pool.query<{ t: string }>(
    `SELECT t.tgrelid::regclass::text || ' ' || t.tgname AS t FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
     WHERE p.pronamespace = to_regnamespace($1) AND t.tgparentid = 0 ORDER BY 1`,
    [config.schema],
  );
  return result.rows.map((r) => r.t);
}

describe('a partitioned table', () => {
  it('is mirrored through the table and through each partition, rows moving between partitions included', async () => {
    const t = await createOrders();
    const config = await mirror(t);
    await expectMirrorClean(scratch, config);
    expect(await scratch.redis.hgetall(key(t, 'eu', 3))).toEqual({ region: 'eu', id: '3', v: '3', note: 'n3' });

    // Straight to a plain partition and to a partitioned one.
    await scratch.pool.query(`INSERT INTO ${t}_eu VALUES ('eu', 5001, 1, 'direct')`);
    await scratch.pool.query(`UPDATE ${t}_us SET v = -v WHERE id < 50`);
    await scratch.pool.query(`DELETE FROM ${t}_as WHERE id BETWEEN 10 AND 20`);
    await scratch.pool.query(`UPDATE ${t}_as_hi SET note = 'hi' WHERE id < 200`);
    // Through the table: rows that move to another partition, and within a partitioned one.
    await scratch.pool.query(`UPDATE ${t} SET region = 'us' WHERE region = 'eu' AND id < 40`);
    await scratch.pool.query(`UPDATE ${t} SET id = id + 500 WHERE region = 'as' AND id BETWEEN 30 AND 60`);
    await scratch.pool.query(`UPDATE ${t}_as SET id = id - 450 WHERE id BETWEEN 530 AND 545`);
    // A key change inside one partition (a row trigger), and a delete through the table.
    await scratch.pool.query(`UPDATE ${t} SET id = id + 2000 WHERE region = 'eu' AND id BETWEEN 100 AND 110`);
    await scratch.pool.query(`DELETE FROM ${t} WHERE id BETWEEN 250 AND 260`);
    await settle(scratch, config);

    expect(await scratch.redis.hget(key(t, 'eu', 5001), 'note')).toBe('direct');
    expect(await scratch.redis.hget(key(t, 'us', 1), 'v')).toBe('-1');
    expect(await scratch.redis.exists(key(t, 'eu', 3))).toBe(0);
    expect(await scratch.redis.hget(key(t, 'us', 3), 'note')).toBe('n3');
    expect(await scratch.redis.exists(key(t, 'as', 35), key(t, 'as', 535))).toBe(0);
    expect(await scratch.redis.hget(key(t, 'as', 85), 'note')).toBe('n35');
    expect(await scratch.redis.hget(key(t, 'as', 559), 'note')).toBe('n59');
    expect(await scratch.redis.exists(key(t, 'eu', 102))).toBe(0);
    expect(await scratch.redis.hget(key(t, 'eu', 2102), 'note')).toBe('n102');
    const [report] = await expectMirrorClean(scratch, config);
    expect(report!.rows).toBe(Number((await scratch.pool.query(`SELECT count(*) FROM ${t}`)).rows[0].count));
  });

  it('loses the keys of a truncated partition only, and all of them on TRUNCATE of the table', async () => {
    const t = await createOrders();
    const config = await mirror(t);
    const client = await scratch.pool.connect();
    try {
      // Rows inserted in the same transaction, before the TRUNCATE, go too.
      await client.query('BEGIN');
      await client.query(`INSERT INTO ${t} VALUES ('eu', 7000, 1, 'doomed')`);
      await client.query(`TRUNCATE ${t}_eu`);
      await client.query(`TRUNCATE ${t}_as_hi`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await settle(scratch, config);
    expect(await scratch.redis.exists(key(t, 'eu', 3), key(t, 'eu', 7000), key(t, 'as', 149))).toBe(0);
    expect(await scratch.redis.hget(key(t, 'us', 1), 'note')).toBe('n1');
    expect(await scratch.redis.hget(key(t, 'as', 2), 'note')).toBe('n2');
    const [report] = await expectMirrorClean(scratch, config);
    expect(report!.rows).toBe(100 + 33);

    // TRUNCATE of the whole table journals one entry, not each partition's keys; a partition's
    // TRUNCATE later in the same transaction journals its keys again.
    for (const daemon of daemons.splice(0)) await daemon.stop();
    await scratch.pool.query(`BEGIN; TRUNCATE ${t}; INSERT INTO ${t}_us VALUES ('us', 1, 1, 'after'), ('us', 2, 2, 'gone');
      INSERT INTO ${t}_eu VALUES ('eu', 1, 1, 'gone'); TRUNCATE ${t}_eu; DELETE FROM ${t}_us WHERE id = 2; COMMIT`);
    const journal = await scratch.pool.query<{ op: string; n: string | null }>(
      `SELECT op, array_length(keys, 1)::text AS n FROM ${config.schema}.journal ORDER BY id`,
    );
    expect(journal.rows).toEqual([
      { op: 't', n: null },
      { op: 'k', n: '2' },
      { op: 'k', n: '1' },
      { op: 'k', n: '1' },
      { op: 'k', n: '1' },
    ]);
    daemons.push(await startDaemon(config));
    await settle(scratch, config);
    expect(await scratch.redis.keys(`${scratch.prefix}public.${t}:*`)).toEqual([key(t, 'us', 1)]);
    await expectMirrorClean(scratch, config);
  });

  it('has a partition created after install captured by the next install; a detached one loses its triggers, and its writes go on', async () => {
    const t = await createOrders();
    const config = await mirror(t);
    await scratch.pool.query(`CREATE TABLE ${t}_jp PARTITION OF ${t} FOR VALUES IN ('jp')`);
    // Through the table it is captured already; straight to it, not yet.
    await scratch.pool.query(`INSERT INTO ${t} VALUES ('jp', 1, 1, 'via table'); INSERT INTO ${t}_jp VALUES ('jp', 2, 1, 'direct')`);
    await settle(scratch, config);
    expect(await scratch.redis.hget(key(t, 'jp', 1), 'note')).toBe('via table');
    expect(await scratch.redis.exists(key(t, 'jp', 2))).toBe(0);
    const status = await readStatus(scratch.pool, { schema: config.schema, redisUrl: scratch.redisUrl });
    expect(status.tables[0]!.partitionsUncaptured).toEqual([`public.${t}_jp`]);
    expect(status.problems.map((p) => p.kind)).toContain('partition-uncaptured');

    const again = await install(config, scratch.pool);
    expect(again.tables).toEqual([{ table: `public.${t}`, action: 'update', reason: `partition public.${t}_jp without triggers` }]);
    await scratch.pool.query(`INSERT INTO ${t}_jp VALUES ('jp', 3, 1, 'direct')`);
    await settle(scratch, config);
    expect(await scratch.redis.hget(key(t, 'jp', 3), 'note')).toBe('direct');
    const fixed = await readStatus(scratch.pool, { schema: config.schema, redisUrl: scratch.redisUrl });
    expect(fixed.tables[0]!.partitionsUncaptured).toEqual([]);
    expect(fixed.problems).toEqual([]);

    // Detached: writes to it still succeed and journal nothing (no daemon drains the journal
    // meanwhile); the next install removes its triggers.
    for (const daemon of daemons.splice(0)) await daemon.stop();
    await scratch.pool.query(`ALTER TABLE ${t} DETACH PARTITION ${t}_us`);
    await scratch.pool.query(`INSERT INTO ${t}_us VALUES ('us', 9000, 1, 'detached'); UPDATE ${t}_us SET v = 0`);
    const journal = await scratch.pool.query(`SELECT count(*)::text AS n FROM ${config.schema}.journal`);
    expect(journal.rows[0].n).toBe('0');
    expect(await ourTriggers(config)).toContain(`${t}_us ${config.schema}_insert`);
    expect((await install(config, scratch.pool)).tables[0]).toMatchObject({ action: 'update', reason: 'triggers left on a detached partition' });
    expect((await ourTriggers(config)).filter((tr) => tr.startsWith(`${t}_us `))).toEqual([]);
    // Its rows left the table without a trigger: verify --repair removes their keys.
    const drift = await verify(scratch, config);
    expect(drift[0]!.extra).toBe(100);

    // Detach another one and uninstall: no trigger of ours is left anywhere.
    await scratch.pool.query(`ALTER TABLE ${t} DETACH PARTITION ${t}_eu`);
    await uninstall(config, scratch.pool);
    expect(await ourTriggers(config)).toEqual([]);
    const left = await scratch.pool.query(`SELECT count(*)::text AS n FROM pg_trigger WHERE tgname LIKE $1`, [`${config.schema}%`]);
    expect(left.rows[0].n).toBe('0');
  });

  it('is found by its partitions after it is attached under another table; status says writes through that table escape', async () => {
    const t = await createOrders();
    const config = await mirror(t);
    for (const daemon of daemons.splice(0)) await daemon.stop();
    await scratch.pool.query(`CREATE TABLE ${t}_all (LIKE ${t}) PARTITION BY LIST (region);
      ALTER TABLE ${t}_all ATTACH PARTITION ${t} FOR VALUES IN ('eu', 'us', 'as')`);
    // The partition's root is now the other table: its changes still journal under ours.
    await scratch.pool.query(`INSERT INTO ${t}_eu VALUES ('eu', 8001, 1, 'direct')`);
    const journal = await scratch.pool.query<{ rel: string }>(`SELECT rel::regclass::text AS rel FROM ${config.schema}.journal`);
    expect(journal.rows.map((r) => r.rel)).toEqual([t]);
    const status = await readStatus(scratch.pool, { schema: config.schema, redisUrl: scratch.redisUrl });
    expect(status.tables[0]!.attachedTo).toBe(`public.${t}_all`);
    expect(status.problems.find((p) => p.kind === 'table-attached')?.message).toMatch(new RegExp(`now a partition of public\\.${t}_all: writes made through`));
    await expect(install(config, scratch.pool)).rejects.toThrow(`public.${t} is a partition of public.${t}_all; mirror public.${t}_all instead`);
  });

  it('takes hostile names of the table, its partitions, its tool schema and key columns as names', async () => {
    const schema = 'Pärt "S"; --';
    const table = 'T.\'x"; DROP TABLE y; --';
    const q = quoteIdent;
    const tsql = `${q(schema)}.${q(table)}`;
    const leaf = (n: string): string => `${q(schema)}.${q(`${table} ${n}`)}`;
    await scratch.pool.query(`
      CREATE SCHEMA ${q(schema)};
      CREATE TABLE ${tsql} (${q('Re:gion')} text, ${q('I"d')} int, v int, PRIMARY KEY (${q('Re:gion')}, ${q('I"d')})) PARTITION BY LIST (${q('Re:gion')});
      CREATE TABLE ${leaf('a%s')} PARTITION OF ${tsql} FOR VALUES IN ('a');
      CREATE TABLE ${leaf('b')} PARTITION OF ${tsql} FOR VALUES IN ('b') PARTITION BY RANGE (${q('I"d')});
      CREATE TABLE ${leaf('b lo')} PARTITION OF ${leaf('b')} FOR VALUES FROM (MINVALUE) TO (100);
      CREATE TABLE ${leaf('b hi')} PARTITION OF ${leaf('b')} FOR VALUES FROM (100) TO (MAXVALUE);
      INSERT INTO ${tsql} SELECT (ARRAY['a', 'b'])[1 + g % 2], g, g FROM generate_series(1, 200) g;`);
    const config = scratch.config([formatTableName({ schema, name: table })], { schema: `Tool "P"; -- ${++counter}` });
    await install(config, scratch.pool);
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
    daemons.push(await startDaemon(config));
    await scratch.pool.query(`INSERT INTO ${leaf('a%s')} VALUES ('a', 1001, 1)`);
    await scratch.pool.query(`UPDATE ${tsql} SET ${q('Re:gion')} = 'b' WHERE ${q('I"d')} < 20`);
    await scratch.pool.query(`UPDATE ${leaf('b')} SET ${q('I"d')} = ${q('I"d')} + 500 WHERE ${q('I"d')} BETWEEN 50 AND 60`);
    await scratch.pool.query(`TRUNCATE ${leaf('b hi')}`);
    await settle(scratch, config);
    const [report] = await expectMirrorClean(scratch, config);
    expect(report!.rows).toBe(Number((await scratch.pool.query(`SELECT count(*) FROM ${tsql}`)).rows[0].count));
    expect(report!.rows).toBeGreaterThan(100);
    for (const daemon of daemons.splice(0)) await daemon.stop();
    await uninstall(config, scratch.pool);
    const left = await scratch.pool.query(`SELECT count(*)::text AS n FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN (SELECT relid FROM pg_partition_tree($1::regclass))`, [tsql]);
    expect(left.rows[0].n).toBe('0');
  });
});
