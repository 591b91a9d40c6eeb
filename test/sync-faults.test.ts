import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { install } from '../src/install/install.js';
import { connectRedis } from '../src/redis/connect.js';
import { verifyMirror, isClean } from '../src/verify/verify.js';
import { createScratch, waitUntil, type Scratch } from './helpers/scratch.js';
import { TestRedisServer } from './helpers/redis-server.js';

const run = promisify(execFile);
const CLI = new URL('../bin/pg-redis-mirror.js', import.meta.url).pathname;

let scratch: Scratch;
let redisServer: TestRedisServer;

beforeAll(async () => {
  scratch = await createScratch('syncfault');
  redisServer = await TestRedisServer.start();
});
afterAll(async () => {
  await redisServer.stop();
  await scratch.cleanup();
});

it('reports Redis lost in the middle of a copy in one line, and a second run completes the copy', async () => {
  await scratch.pool.query(`CREATE TABLE big (id int PRIMARY KEY, payload text)`);
  await scratch.pool.query(`INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g`);
  const config = scratch.config(['public.big'], { redisUrl: redisServer.url });
  await install(config, scratch.pool);
  const env = { ...process.env, DATABASE_URL: config.databaseUrl, REDIS_URL: redisServer.url };
  const copy = run('node', [CLI, 'sync', '--prefix', scratch.prefix, '--page-size', '1000'], { env }).then(
    () => ({ code: 0, stderr: '' }),
    (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
  );
  // Stopped once the copy is writing (a fixed wait lost the race to a slow CLI start).
  const watcher = await connectRedis(redisServer.url);
  try {
    await waitUntil('the copy writes', async () => (await watcher.dbsize()) > 0, 20_000);
  } finally {
    watcher.disconnect();
  }
  await redisServer.stop();
  const failed = await copy;
  expect(failed.code).toBe(1);
  // Off a terminal, progress goes to stderr as JSON log lines; the error is the one plain line.
  const lines = failed.stderr.trim().split('\n').filter((line) => !line.startsWith('{'));
  expect(lines, failed.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^pg-redis-mirror: lost Redis at 127\.0\.0\.1:\d+ during the copy: .*run the command again/);

  await redisServer.start();
  const again = await run('node', [CLI, 'sync', '--quiet', '--prefix', scratch.prefix], { env });
  expect(again.stderr).toBe('');
  const redis = await connectRedis(redisServer.url);
  try {
    expect(isClean(await verifyMirror(scratch.pool, redis, { schema: config.schema }))).toBe(true);
  } finally {
    redis.disconnect();
  }
});
