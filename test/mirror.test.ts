import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config, TableConfig } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install } from '../src/install/install.js';
import { createScratch, expectMirrorClean, installAndStart, settle, sleep, startDaemon, waitUntil, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
let daemons: MirrorDaemon[] = [];
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('mirror');
});
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
});
afterAll(async () => {
  await scratch.cleanup();
});

/** Creates the tables, installs them under a tool schema of this test's own, starts a daemon. */
async function mirror(ddl: string, tables: (string | (Partial<TableConfig> & { table: string }))[]): Promise<Config> {
  await scratch.pool.query(ddl);
  const config = scratch.config(tables, { schema: `mirror_${++counter}` });
  daemons.push(await installAndStart(scratch, config));
  return config;
}

const key = (table: string, ...values: string[]): string => `${scratch.prefix}${table}:${values.join(':')}`;

describe('the daemon mirrors changes', () => {
  it('applies INSERT, UPDATE and DELETE, one row and many', async () => {
    const config = await mirror(`CREATE TABLE basic (id int PRIMARY KEY, name text, v int)`, ['public.basic']);
    await scratch.pool.query(`INSERT INTO basic SELECT g, 'n' || g, g FROM generate_series(1, 50) g`);
    await scratch.pool.query(`UPDATE basic SET v = v * 10 WHERE id % 2 = 0`);
    await scratch.pool.query(`DELETE FROM basic WHERE id > 40`);
    await scratch.pool.query(`UPDATE basic SET name = NULL WHERE id = 3`);
    await settle(scratch, config);
    expect(await scratch.redis.hgetall(key('public.basic', '4'))).toEqual({ id: '4', name: 'n4', v: '40' });
    expect(await scratch.redis.hgetall(key('public.basic', '3'))).toEqual({ id: '3', v: '3' });
    expect(await scratch.redis.exists(key('public.basic', '41'))).toBe(0);
    const reports = await expectMirrorClean(scratch, config);
    expect(reports[0]!.rows).toBe(40);
  });

  it('mirrors a 100k-row UPDATE in one statement', async () => {
    const config = await mirror(`CREATE TABLE bulk (id bigint PRIMARY KEY, v int NOT NULL)`, ['public.bulk']);
    await scratch.pool.query(`INSERT INTO bulk SELECT g, 0 FROM generate_series(1, 100000) g`);
    await settle(scratch, config, 60_000);
    await scratch.pool.query(`UPDATE bulk SET v = v + 1`);
    await settle(scratch, config, 60_000);
    expect(await scratch.redis.hget(key('public.bulk', '99999'), 'v')).toBe('1');
    const reports = await expectMirrorClean(scratch, config);
    expect(reports[0]!.rows).toBe(100_000);
  });

  it('removes every key of a table on TRUNCATE, and keeps rows inserted after it', async () => {
    const config = await mirror(`CREATE TABLE trunc (id int PRIMARY KEY, v text)`, ['public.trunc']);
    await scratch.pool.query(`INSERT INTO trunc SELECT g, 'x' FROM generate_series(1, 300) g`);
    await settle(scratch, config);
    const client = await scratch.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO trunc VALUES (1000, 'before')`);
      await client.query(`TRUNCATE trunc`);
      await client.query(`INSERT INTO trunc VALUES (7, 'after')`);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await settle(scratch, config);
    expect(await scratch.redis.hgetall(key('public.trunc', '7'))).toEqual({ id: '7', v: 'after' });
    expect(await scratch.redis.exists(key('public.trunc', '1'), key('public.trunc', '1000'))).toBe(0);
    await expectMirrorClean(scratch, config);
  });

  it('moves the key when an UPDATE changes the primary key', async () => {
    const config = await mirror(`CREATE TABLE pk (id int PRIMARY KEY, v text)`, ['public.pk']);
    await scratch.pool.query(`INSERT INTO pk SELECT g, 'v' || g FROM generate_series(1, 10) g`);
    await settle(scratch, config);
    await scratch.pool.query(`UPDATE pk SET id = id + 100 WHERE id <= 5`);
    await settle(scratch, config);
    expect(await scratch.redis.exists(key('public.pk', '1'))).toBe(0);
    expect(await scratch.redis.hgetall(key('public.pk', '101'))).toEqual({ id: '101', v: 'v1' });
    // A swap in one transaction: both keys survive with each other's values.
    await scratch.pool.query(`BEGIN; UPDATE pk SET id = -6 WHERE id = 6; UPDATE pk SET id = 6 WHERE id = 7; UPDATE pk SET id = 7 WHERE id = -6; COMMIT`);
    await settle(scratch, config);
    expect(await scratch.redis.hget(key('public.pk', '6'), 'v')).toBe('v7');
    await expectMirrorClean(scratch, config);
  });

  it('handles composite keys, including a key change of one part', async () => {
    const config = await mirror(
      `CREATE TABLE comp (tenant text, id int, v int, PRIMARY KEY (tenant, id))`,
      ['public.comp'],
    );
    await scratch.pool.query(`INSERT INTO comp SELECT 't' || (g % 3), g, g FROM generate_series(1, 30) g`);
    await scratch.pool.query(`UPDATE comp SET tenant = 'moved' WHERE id = 4`);
    await scratch.pool.query(`DELETE FROM comp WHERE id = 5`);
    await settle(scratch, config);
    expect(await scratch.redis.hgetall(key('public.comp', 'moved', '4'))).toEqual({ tenant: 'moved', id: '4', v: '4' });
    expect(await scratch.redis.exists(key('public.comp', 't1', '4'))).toBe(0);
    await expectMirrorClean(scratch, config);
  });

  it('keeps rows apart whose key values contain ":"', async () => {
    const config = await mirror(`CREATE TABLE colon (a text, b text, v int, PRIMARY KEY (a, b))`, ['public.colon']);
    await scratch.pool.query(`INSERT INTO colon VALUES ('x:y', 'z', 1), ('x', 'y:z', 2), ('x\\', ':y', 3)`);
    await settle(scratch, config);
    const keys = await scratch.redis.keys(`${scratch.prefix}public.colon:*`);
    expect(keys).toHaveLength(3);
    expect(await scratch.redis.hget(key('public.colon', 'x\\:y', 'z'), 'v')).toBe('1');
    expect(await scratch.redis.hget(key('public.colon', 'x', 'y\\:z'), 'v')).toBe('2');
    await expectMirrorClean(scratch, config);
  });

  it('mirrors several tables in different schemas with their own options', async () => {
    const config = await mirror(
      `CREATE SCHEMA sales; CREATE SCHEMA hr;
       CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric, note text);
       CREATE TABLE hr.people (id int PRIMARY KEY, name text, salary int, ssn text);`,
      [
        { table: 'sales.orders', format: 'json', keyTemplate: 'order:{id}' },
        { table: 'hr.people', exclude: ['salary', 'ssn'] },
      ],
    );
    await scratch.pool.query(`INSERT INTO sales.orders VALUES (1, 12345678901234567890.123456789, 'a')`);
    await scratch.pool.query(`INSERT INTO hr.people VALUES (1, 'Ann', 100, '123-45')`);
    await settle(scratch, config);
    expect(await scratch.redis.get(`${scratch.prefix}order:1`)).toBe('{"id": 1, "note": "a", "total": 12345678901234567890.123456789}');
    expect(await scratch.redis.hgetall(key('hr.people', '1'))).toEqual({ id: '1', name: 'Ann' });
    await expectMirrorClean(scratch, config);
  });

  it('mirrors only the chosen columns', async () => {
    const config = await mirror(`CREATE TABLE chosen (id int PRIMARY KEY, a text, b text, secret text)`, [
      { table: 'public.chosen', columns: ['id', 'a'] },
    ]);
    await scratch.pool.query(`INSERT INTO chosen VALUES (1, 'A', 'B', 'S')`);
    await settle(scratch, config);
    expect(await scratch.redis.hgetall(key('public.chosen', '1'))).toEqual({ id: '1', a: 'A' });
    await expectMirrorClean(scratch, config);
  });

  it('mirrors a 1 MB row and a row with 1,600 columns', async () => {
    const columns = Array.from({ length: 1599 }, (_, i) => `c${i} int`).join(', ');
    const config = await mirror(
      `CREATE TABLE big (id int PRIMARY KEY, body text);
       CREATE TABLE wide (id int PRIMARY KEY, ${columns});`,
      ['public.big', { table: 'public.wide', format: 'hash' }],
    );
    const body = 'é'.repeat(512 * 1024);
    await scratch.pool.query(`INSERT INTO big VALUES (1, $1)`, [body]);
    await scratch.pool.query(`INSERT INTO wide (id, c0, c1598) VALUES (1, 10, 20)`);
    await settle(scratch, config);
    expect(await scratch.redis.hget(key('public.big', '1'), 'body')).toBe(body);
    expect(await scratch.redis.hgetall(key('public.wide', '1'))).toEqual({ id: '1', c0: '10', c1598: '20' });
    await expectMirrorClean(scratch, config);
  });

  it('delivers changes made while the daemon was down', async () => {
    const config = await mirror(`CREATE TABLE offline (id int PRIMARY KEY, v int)`, ['public.offline']);
    await Promise.all(daemons.map((d) => d.stop()));
    daemons = [];
    await scratch.pool.query(`INSERT INTO offline SELECT g, g FROM generate_series(1, 5000) g`);
    await scratch.pool.query(`UPDATE offline SET v = -v WHERE id < 100`);
    await scratch.pool.query(`DELETE FROM offline WHERE id > 2500`);
    // Statements journal their keys 1000 to a row: 5 rows for the INSERT, 1 for the UPDATE, 3 for the DELETE.
    const journal = await scratch.pool.query(`SELECT array_length(keys, 1) AS n FROM ${config.schema}.journal ORDER BY id`);
    expect(journal.rows.map((r) => Number(r.n)).sort((a, b) => a - b)).toEqual([99, 500, 1000, 1000, 1000, 1000, 1000, 1000, 1000]);
    expect(await scratch.redis.exists(key('public.offline', '1'))).toBe(0);
    daemons.push(await startDaemon(config, { pollIntervalMs: 60_000 }));
    await settle(scratch, config);
    expect(await scratch.redis.hget(key('public.offline', '1'), 'v')).toBe('-1');
    expect(await scratch.redis.exists(key('public.offline', '2501'))).toBe(0);
    await expectMirrorClean(scratch, config);
  });

  it('wakes on NOTIFY, without waiting for the poll, and ignores foreign payloads', async () => {
    await scratch.pool.query(`CREATE TABLE quick (id int PRIMARY KEY, v int)`);
    const config = scratch.config(['public.quick'], { schema: `mirror_${++counter}` });
    await install(config, scratch.pool);
    daemons.push(await startDaemon(config, { pollIntervalMs: 600_000 }));
    await settle(scratch, config);
    await scratch.pool.query(`SELECT pg_notify($1, 'not json'), pg_notify($1, '{"rel":"x"}'), pg_notify($1, '{"event":"drop"}')`, [config.schema]);
    await scratch.pool.query(`INSERT INTO quick VALUES (1, 1)`);
    await waitUntil('change applied although the poll is 10 minutes', async () => (await scratch.redis.exists(key('public.quick', '1'))) === 1, 5000);
    await expectMirrorClean(scratch, config);
  });

  it('never reads an excluded column: the daemon runs as a role that is not allowed to', async () => {
    await scratch.pool.query(`CREATE TABLE guarded (id int PRIMARY KEY, name text, secret text)`);
    const config = scratch.config([{ table: 'public.guarded', exclude: ['secret'] }], { schema: `mirror_${++counter}` });
    await install(config, scratch.pool);
    const role = `prm_reader_${scratch.database.slice(-8)}`;
    await scratch.pool.query(`CREATE ROLE ${role} LOGIN;
      GRANT USAGE ON SCHEMA ${config.schema} TO ${role};
      GRANT SELECT, DELETE ON ${config.schema}.journal TO ${role};
      GRANT SELECT ON ${config.schema}.tables TO ${role};
      GRANT SELECT, UPDATE ON ${config.schema}.meta TO ${role};
      GRANT SELECT (id, name) ON guarded TO ${role};`);
    try {
      const url = new URL(config.databaseUrl);
      url.username = role;
      const daemon = await startDaemon({ ...config, databaseUrl: url.toString() });
      daemons.push(daemon);
      await scratch.pool.query(`INSERT INTO guarded VALUES (1, 'visible', 'top secret'); UPDATE guarded SET secret = 'still secret'`);
      await settle(scratch, config);
      expect(await scratch.redis.hgetall(key('public.guarded', '1'))).toEqual({ id: '1', name: 'visible' });
      await expectMirrorClean(scratch, config);
      await daemon.stop();
    } finally {
      await scratch.pool.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it('applies a change that skipped NOTIFY (daemon busy) as soon as its long transaction commits, without the poll', async () => {
    await scratch.pool.query(`CREATE TABLE late (id int PRIMARY KEY, v int)`);
    const config = scratch.config(['public.late'], { schema: `mirror_${++counter}` });
    await install(config, scratch.pool);
    const app = await scratch.pool.connect();
    try {
      // No daemon holds the wake lock, so this transaction skips NOTIFY and holds the lock shared.
      await app.query(`BEGIN; INSERT INTO late VALUES (1, 1)`);
      const daemon = await startDaemon(config, { pollIntervalMs: 600_000 });
      daemons.push(daemon);
      await sleep(200);
      await app.query('COMMIT');
      await waitUntil('a change committed after the daemon started is applied', async () => (await scratch.redis.exists(key('public.late', '1'))) === 1, 3000);
    } finally {
      app.release();
    }
    // Idle again: the next isolated change notifies and arrives at once.
    await settle(scratch, config);
    await sleep(100);
    await scratch.pool.query(`INSERT INTO late VALUES (2, 2)`);
    await waitUntil('an isolated change is applied', async () => (await scratch.redis.exists(key('public.late', '2'))) === 1, 3000);
    await expectMirrorClean(scratch, config);
  });

  it('sends few NOTIFYs under concurrent load: transactions skip it while the daemon is busy', async () => {
    await scratch.pool.query(`CREATE TABLE busy (id int PRIMARY KEY, v int NOT NULL)`);
    await scratch.pool.query(`INSERT INTO busy SELECT g, 0 FROM generate_series(1, 1000) g`);
    const config = scratch.config(['public.busy'], { schema: `mirror_${++counter}` });
    await install(config, scratch.pool);
    daemons.push(await startDaemon(config));
    await settle(scratch, config);
    const listener = await scratch.pool.connect();
    let notifications = 0;
    listener.on('notification', () => notifications++);
    await listener.query(`LISTEN "${config.schema}"`);
    const transactions = 2000;
    try {
      await Promise.all(
        [0, 1, 2, 3].map(async (w) => {
          for (let i = 0; i < transactions / 4; i++) await scratch.pool.query(`UPDATE busy SET v = v + 1 WHERE id = $1`, [1 + ((i * 4 + w) % 1000)]);
        }),
      );
      await settle(scratch, config);
    } finally {
      await listener.query('UNLISTEN *');
      listener.release();
    }
    expect(notifications).toBeLessThan(transactions / 2);
    await expectMirrorClean(scratch, config);
  });

  it('keeps applying other tables when a journal entry names a table that is no longer mirrored', async () => {
    const config = await mirror(`CREATE TABLE keep (id int PRIMARY KEY); CREATE TABLE gone (id int PRIMARY KEY)`, ['public.keep', 'public.gone']);
    await Promise.all(daemons.map((d) => d.stop()));
    daemons = [];
    await scratch.pool.query(`INSERT INTO gone VALUES (1); INSERT INTO keep VALUES (1)`);
    await install({ ...config, tables: config.tables.filter((t) => t.name === 'keep') }, scratch.pool);
    daemons.push(await startDaemon(config));
    await settle(scratch, config);
    expect(await scratch.redis.exists(key('public.keep', '1'))).toBe(1);
  });
});
