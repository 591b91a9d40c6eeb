import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../src/redis/connect.js';
import { command, RespPipe, type ReplyChecks } from '../src/redis/pipe.js';
import { makeCertificates, type Certificates } from './helpers/certs.js';
import { TestRedisServer } from './helpers/redis-server.js';

// The copy's own connection (src/redis/pipe.ts) must reach the same server, user and database
// as ioredis does, or the copy falls back to the slower script path without saying so.

const PASSWORD = 'pipe-Secret-77a1';
let server: TestRedisServer;
let certs: Certificates;
let certDir: string;

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'prm-pipe-tls-'));
  certs = makeCertificates(certDir);
  server = await TestRedisServer.start(undefined, { tls: certs, users: [{ name: 'copier', password: PASSWORD }] });
});
afterAll(async () => {
  await server?.stop();
  rmSync(certDir, { recursive: true, force: true });
});

/** Integer replies to check: [reply index, expected value] pairs. */
function checks(...pairs: [number, number][]): ReplyChecks {
  return { at: Int32Array.from(pairs.map((p) => p[0])), expected: Int32Array.from(pairs.map((p) => p[1])) };
}

describe('RespPipe', () => {
  it('logs in as ioredis does (TLS, ACL user, database number) and counts replies, errors and mismatches', async () => {
    const redis = await connectRedis(`rediss://copier:${PASSWORD}@localhost:${server.port}/3?tls_ca=${certs.ca}`);
    const pipe = await RespPipe.open(redis);
    try {
      expect(pipe).not.toBeNull();
      const writes = command('HSET', 'h', 'a', '1', 'b', '2') + command('HLEN', 'h') + command('SET', 's', 'x') + command('HSET', 's', 'a', '1') + command('HLEN', 'h');
      // HLEN is checked at replies 1 and 4: 2 as expected, then 2 against 3.
      const tally = await pipe!.send(writes, { replies: 5, checks: checks([1, 2], [4, 3]) });
      expect(tally).toEqual({ errors: 1, errorTexts: [expect.stringMatching(/^WRONGTYPE/)], mismatches: 1 });
      expect(await redis.hgetall('h')).toEqual({ a: '1', b: '2' });
      expect(await redis.get('s')).toBe('x');
      // Written where ioredis reads: database 3, as the copier.
      expect(await redis.call('CLIENT', 'LIST')).toMatch(/name=pg-redis-mirror-copy .*db=3 .*user=copier/);
      // Many sends in flight at once are answered in order, and replies split across reads are joined.
      const big = 'v'.repeat(100_000);
      const counts = await Promise.all(
        Array.from({ length: 20 }, (_, i) => pipe!.send(command('SET', `k${i}`, big) + command('STRLEN', `k${i}`), { replies: 2, checks: checks([1, 100_000]) })),
      );
      expect(counts.every((t) => t.errors === 0 && t.mismatches === 0)).toBe(true);
    } finally {
      pipe?.close();
      await redis.flushdb();
      redis.disconnect();
    }
  });

  it('runs MULTI ... EXEC: checks the replies inside, and tells a refused or aborted transaction', async () => {
    const redis = await connectRedis(`rediss://copier:${PASSWORD}@localhost:${server.port}/4?tls_ca=${certs.ca}`);
    const pipe = await RespPipe.open(redis, 'pg-redis-mirror-test');
    try {
      const writes = command('HSET', 'h', 'a', '1') + command('HLEN', 'h') + command('SET', 's', 'x') + command('HSET', 's', 'a', '1') + command('HLEN', 'h');
      expect(await pipe!.transaction(writes, { commands: 5, checks: checks([1, 1], [4, 2]) })).toEqual({
        aborted: false,
        errors: 1,
        errorTexts: [expect.stringMatching(/^WRONGTYPE/)],
        mismatches: 1,
      });
      expect(await redis.hgetall('h')).toEqual({ a: '1' });
      // A command refused while queueing: EXEC runs none of them.
      const refused = await pipe!.transaction(command('HSET', 'h', 'b', '2') + command('HSET', 'h'), { commands: 2 });
      expect(refused).toMatchObject({ aborted: false, errors: 2, errorTexts: [expect.stringMatching(/wrong number of arguments/), expect.stringMatching(/^EXECABORT/)] });
      expect(await redis.hgetall('h')).toEqual({ a: '1' });
      // A WATCHed key changed by another client: nothing runs, and the pipe reads on.
      expect(await pipe!.request(command('WATCH', 'w') + command('HGET', 'w', 'leader') + command('GET', 'nothing') + command('HLEN', 'h') + command('GET', 's'), 5)).toEqual(['OK', null, null, 1, 'x']);
      await redis.hset('w', 'leader', '7');
      expect(await pipe!.transaction(command('SET', 'aborted', '1'), { commands: 1 })).toMatchObject({ aborted: true, errors: 0 });
      expect(await redis.exists('aborted')).toBe(0);
      expect(await pipe!.request(command('HGET', 'w', 'leader'), 1)).toEqual(['7']);
      // Replies over many reads, lines split anywhere: 30,000 commands, every third checked.
      const many = Array.from({ length: 10_000 }, (_, i) => command('HSET', `m${i}`, 'a', '1', 'b', '2') + command('HLEN', `m${i}`) + command('DEL', `m${i}`)).join('');
      const at = Int32Array.from({ length: 10_000 }, (_, i) => 3 * i + 1);
      const expected = Int32Array.from({ length: 10_000 }, (_, i) => (i === 9_999 ? 3 : 2));
      expect(await pipe!.transaction(many, { commands: 30_000, checks: { at, expected } })).toEqual({ aborted: false, errors: 0, errorTexts: [], mismatches: 1 });
      // Bulk strings split anywhere across reads.
      const big = 'é'.repeat(70_000);
      await redis.set('big', big);
      expect(await pipe!.request(command('STRLEN', 'big') + command('GET', 'big') + command('PING'), 3)).toEqual([140_000, expect.stringMatching(/^é+$/), 'PONG']);
    } finally {
      pipe?.close();
      await redis.flushdb();
      redis.disconnect();
    }
  });

  it('rejects what is in flight and what comes after when the server goes away', async () => {
    const own = await TestRedisServer.start();
    const redis = await connectRedis(own.url);
    const pipe = await RespPipe.open(redis);
    try {
      // Expected before the server stops, so that its rejection is never unhandled.
      const slow = expect(pipe!.send(command('BLPOP', 'nothing', '10'), { replies: 1 })).rejects.toThrow(/Connection is closed|Redis connection failed/);
      await own.stop();
      await slow;
      await expect(pipe!.send(command('PING'), { replies: 1 })).rejects.toMatchObject({ name: 'RedisPipeError' });
    } finally {
      pipe?.close();
      redis.disconnect();
    }
  });

  it('is not opened to a server it cannot reach (the copy then writes through ioredis)', async () => {
    const own = await TestRedisServer.start();
    const redis = await connectRedis(own.url);
    await own.stop();
    expect(await RespPipe.open(redis)).toBeNull();
    redis.disconnect();
  });
});
