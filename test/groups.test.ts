import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { install } from '../src/install/install.js';
import { MirrorDaemon, type DaemonRole } from '../src/daemon/daemon.js';
import type { Config } from '../src/config/load.js';
import { createScratch, expectMirrorClean, settle, waitUntil, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
const daemons: MirrorDaemon[] = [];

beforeAll(async () => {
  scratch = await createScratch('groups');
});
afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});
afterAll(async () => {
  await scratch.cleanup();
});

/** A daemon of one group, with the tables each of its batches touched. */
async function start(config: Config, group?: string): Promise<{ daemon: MirrorDaemon; tables: Set<string>; roles: DaemonRole[] }> {
  const daemon = await MirrorDaemon.start({
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    schema: config.schema,
    batchSize: config.batchSize,
    pollIntervalMs: 200,
    ...(group === undefined ? {} : { group }),
  });
  daemons.push(daemon);
  const tables = new Set<string>();
  const roles: DaemonRole[] = [];
  daemon.on('batch', (result) => {
    for (const [table, keys] of Object.entries(result.tables)) if (keys > 0) tables.add(table);
  });
  daemon.on('role', (role) => roles.push(role));
  return { daemon, tables, roles };
}

async function journalKeys(config: Config, table: string): Promise<number> {
  const r = await scratch.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${config.schema}.journal WHERE rel = $1::regclass`, [table]);
  return Number(r.rows[0]!.n);
}

describe('table groups', () => {
  it('gives each group its own leader, which applies only that group’s tables', async () => {
    await scratch.pool.query(`
      CREATE TABLE calm (id int PRIMARY KEY, v int NOT NULL);
      CREATE TABLE hot_a (id int PRIMARY KEY, v int NOT NULL);
      CREATE TABLE hot_b (a int, b text, v int NOT NULL, PRIMARY KEY (a, b))`);
    const config = scratch.config(['public.calm', { table: 'public.hot_a', group: 'hot' }, { table: 'public.hot_b', group: 'hot', format: 'json' }], { schema: 'groups_1' });
    await install(config, scratch.pool);
    const calm = await start(config);
    const hot = await start(config, 'hot');
    // A second daemon of the hot group stands by.
    const spare = await start(config, 'hot');
    await waitUntil('each group has a leader', () => calm.roles.includes('leader') && (hot.roles.includes('leader') || spare.roles.includes('leader')));
    await waitUntil('the other hot daemon stands by', () => hot.roles.includes('standby') || spare.roles.includes('standby'));

    for (let round = 0; round < 5; round++) {
      await scratch.pool.query(`INSERT INTO calm SELECT g, ${round} FROM generate_series(1, 200) g ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`);
      await scratch.pool.query(`INSERT INTO hot_a SELECT g, ${round} FROM generate_series(1, 300) g ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`);
      await scratch.pool.query(`INSERT INTO hot_b SELECT g, 'k' || g, ${round} FROM generate_series(1, 100) g ON CONFLICT (a, b) DO UPDATE SET v = EXCLUDED.v`);
      await scratch.pool.query(`DELETE FROM hot_a WHERE id % 7 = ${round}`);
    }
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
    expect([...calm.tables]).toEqual(['public.calm']);
    expect([...hot.tables, ...spare.tables].sort()).toEqual(['public.hot_a', 'public.hot_b']);
    expect(calm.tables.has('public.hot_a')).toBe(false);

    // With the hot group's daemons stopped, its changes wait while the calm group's flow on.
    await Promise.all([hot.daemon.stop(), spare.daemon.stop()]);
    await scratch.pool.query(`UPDATE hot_a SET v = -1 WHERE id = 1; UPDATE calm SET v = -1 WHERE id = 1`);
    await waitUntil('the calm change arrives', async () => (await scratch.redis.hget(`${scratch.prefix}public.calm:1`, 'v')) === '-1');
    expect(await journalKeys(config, 'hot_a')).toBe(1);
    await start(config, 'hot');
    await settle(scratch, config);
    expect(await scratch.redis.hget(`${scratch.prefix}public.hot_a:1`, 'v')).toBe('-1');
    await expectMirrorClean(scratch, config);
  });

  it('refuses a group with no table, in one line', async () => {
    const config = scratch.config(['public.calm'], { schema: 'groups_1' });
    await expect(start(config, 'nobody')).rejects.toThrow(/no mirrored table is in group "nobody"/);
  });
});
