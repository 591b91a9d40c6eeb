import { describe, expect, it } from 'vitest';
import { connectRedis } from '../src/redis/connect.js';
import pg from 'pg';
import { clientConfig } from '../src/db/connect.js';
import { runCli } from './helpers/cli.js';
import { BASE_DATABASE_URL, REDIS_URL } from './helpers/scratch.js';

async function pool(): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(BASE_DATABASE_URL));
  await client.connect();
  return client;
}

// The README's first command: it must run on local defaults and leave nothing behind.
describe('demo', () => {
  it('mirrors its writes live, then removes its database, its keys and its daemon state', async () => {
    const redis = await connectRedis(REDIS_URL);
    try {
      const r = await runCli(['demo', '--database-url', BASE_DATABASE_URL, '--redis-url', REDIS_URL], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/in Redis [\d.]+ ms after COMMIT/);
      const prefix = /Redis prefix (\S+)/.exec(r.stdout)?.[1];
      expect(prefix).toBeDefined();
      expect(r.stdout).toContain('cleaned up');
      expect(await redis.keys(`${prefix!}*`)).toEqual([]);
      const database = /scratch database (\S+),/.exec(r.stdout)?.[1];
      expect(database).toMatch(/^pg_redis_mirror_demo_/);
      const admin = await pool();
      try {
        const left = await admin.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [database]);
        expect(left.rowCount).toBe(0);
      } finally {
        await admin.end();
      }
    } finally {
      redis.disconnect();
    }
  }, 90_000);
});
