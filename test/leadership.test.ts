import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { install } from '../src/install/install.js';
import { syncTables } from '../src/sync/sync.js';
import { verifyMirror, isClean } from '../src/verify/verify.js';
import { writeKeys } from '../src/redis/replace.js';
import { writeBlock, type CommandBlock } from '../src/redis/fenced-block.js';
import { command, RespPipe } from '../src/redis/pipe.js';
import { parseLayout } from '../src/daemon/framed-commands.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { spawnCli, type RunningCli } from './helpers/cli.js';
import { TestRedisServer } from './helpers/redis-server.js';
import { createScratch, expectMirrorClean, settle, sleep, startDaemon, waitUntil, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
const children: RunningCli[] = [];
let daemon: MirrorDaemon | undefined;

beforeAll(async () => {
  scratch = await createScratch('leader');
});
afterEach(async () => {
  for (const child of children.splice(0)) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  await daemon?.stop();
  daemon = undefined;
});
afterAll(async () => {
  await scratch.cleanup();
});

const LEADING = '"msg":"leading: applying changes"';
const STANDBY = '"msg":"standby: another daemon leads; taking over when it stops"';

/** Writes random changes on its own until stopped; the application must never see an error. */
function writer(table: string, stop: () => boolean): Promise<number> {
  return (async () => {
    let n = 0;
    while (!stop()) {
      const id = 1 + Math.floor(Math.random() * 500);
      await scratch.pool.query(`INSERT INTO ${table} VALUES ($1, 0) ON CONFLICT (id) DO UPDATE SET v = ${table}.v + 1`, [id]);
      if (n % 7 === 0) await scratch.pool.query(`DELETE FROM ${table} WHERE id = $1`, [id + 1]);
      n++;
    }
    return n;
  })();
}

describe('leadership', () => {
  it('lets exactly one of two daemons apply changes, and the other take over within 5 s of the leader being killed', async () => {
    await scratch.pool.query(`CREATE TABLE led (id int PRIMARY KEY, v int NOT NULL)`);
    const config = scratch.config(['public.led'], { schema: 'leader_1' });
    await install(config, scratch.pool);
    const args = ['listen', '--database-url', config.databaseUrl, '--redis-url', config.redisUrl, '--schema', config.schema, '--poll-interval', '200'];
    const first = spawnCli(args);
    children.push(first);
    await waitUntil('the first daemon leads', () => first.stderr.includes(LEADING), 10_000);
    const second = spawnCli(args);
    children.push(second);
    await waitUntil('the second daemon stands by', () => second.stderr.includes(STANDBY), 10_000);

    let stop = false;
    const writes = writer('led', () => stop);
    try {
      await sleep(1000);
      expect(second.stderr).not.toContain(LEADING);
      first.child.kill('SIGKILL');
      const killedAt = Date.now();
      await waitUntil('the standby takes over', () => second.stderr.includes(LEADING), 5000);
      expect(Date.now() - killedAt).toBeLessThan(5000);
      await sleep(1000);
    } finally {
      stop = true;
    }
    expect(await writes).toBeGreaterThan(50);
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
  });

  it('refuses writes from a daemon whose fencing token a newer leader has passed', async () => {
    const fence = { key: `${scratch.prefix}state`, token: '5' };
    await scratch.redis.hset(fence.key, 'leader', '6');
    await expect(writeKeys(scratch.redis, [{ key: `${scratch.prefix}fenced`, hash: ['a', '1'] }], fence)).rejects.toThrow(/FENCED/);
    expect(await scratch.redis.exists(`${scratch.prefix}fenced`)).toBe(0);
    await writeKeys(scratch.redis, [{ key: `${scratch.prefix}fenced`, hash: ['a', '1'] }], { ...fence, token: '6' });
    expect(await scratch.redis.hget(`${scratch.prefix}fenced`, 'a')).toBe('1');
  });

  it('refuses MULTI ... EXEC writes the same way, and replaces whole a key the commands could not', async () => {
    const fence = { key: `${scratch.prefix}state:multi`, token: '5' };
    await scratch.redis.hset(fence.key, 'leader', '6');
    const pipe = (await RespPipe.open(scratch.redis))!;
    const [a, b] = [`${scratch.prefix}multi:a`, `${scratch.prefix}multi:b`];
    // a: HSET x, HLEN = 1; b: HSET x y, HLEN = 2, as the daemon's statement frames them.
    const block: CommandBlock = {
      text: command('HSET', a, 'x', '1') + command('HLEN', a) + command('HSET', b, 'x', '2', 'y', '3') + command('HLEN', b),
      layout: parseLayout('1,2', 2, 0),
    };
    try {
      await expect(writeBlock(pipe, block, fence)).rejects.toThrow(/FENCED/);
      expect(await scratch.redis.exists(a, b)).toBe(0);
      // Then current: a holds a field of no column, b is of another type. Both end up exactly as written.
      await scratch.redis.hset(a, 'gone', 'z');
      await scratch.redis.set(b, 'a string');
      await writeBlock(pipe, block, { ...fence, token: '6' });
      expect(await scratch.redis.hgetall(a)).toEqual({ x: '1' });
      expect(await scratch.redis.hgetall(b)).toEqual({ x: '2', y: '3' });
      // A token raised while the pipe idles (its WATCH standing since the last block) stops the next block.
      await scratch.redis.hset(fence.key, 'leader', '7');
      const c = `${scratch.prefix}multi:c`;
      const late: CommandBlock = { text: command('HSET', c, 'x', '1') + command('HLEN', c), layout: parseLayout('1', 1, 0) };
      await expect(writeBlock(pipe, late, { ...fence, token: '6' })).rejects.toThrow(/FENCED/);
      expect(await scratch.redis.exists(c)).toBe(0);
    } finally {
      pipe.close();
    }
  });
});

describe('Redis that lost its data', () => {
  it('is noticed by the daemon, which copies every table again by itself (FLUSHALL, then a restart without persistence)', async () => {
    const server = await TestRedisServer.start();
    const redis = new Redis(server.url, { retryStrategy: () => 200, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    try {
      await scratch.pool.query(`CREATE TABLE kept (id int PRIMARY KEY, v int NOT NULL);
        INSERT INTO kept SELECT g, g FROM generate_series(1, 3000) g`);
      const config = { ...scratch.config(['public.kept'], { schema: 'leader_2' }), redisUrl: server.url };
      await install(config, scratch.pool);
      await syncTables(scratch.pool, redis, { schema: config.schema });
      daemon = await startDaemon(config, { pollIntervalMs: 200 });
      const clean = async (): Promise<boolean> => isClean(await verifyMirror(scratch.pool, redis, { schema: config.schema }));
      await scratch.pool.query(`UPDATE kept SET v = v + 1 WHERE id <= 10`);
      await settle(scratch, config);
      expect(await clean()).toBe(true);

      await redis.flushall();
      await scratch.pool.query(`UPDATE kept SET v = v + 1 WHERE id > 2990`);
      await waitUntil('the mirror is whole again after FLUSHALL', clean, 15_000);
      expect(await redis.dbsize()).toBe(3001);

      await server.stop();
      await server.start();
      await scratch.pool.query(`DELETE FROM kept WHERE id = 1`);
      await waitUntil('the mirror is whole again after a restart', async () => (await clean().catch(() => false)) === true, 20_000);
    } finally {
      await daemon?.stop();
      daemon = undefined;
      redis.disconnect();
      await server.stop();
    }
  });
});
