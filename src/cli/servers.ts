import type pg from 'pg';
import type { RedisClient } from '../redis/cluster.js';
import type { Config } from '../config/load.js';
import { checkPool, createPool } from '../db/connect.js';
import { describePgError } from '../db/errors.js';
import { connectRedis, describeRedisFailure, isRedisError } from '../redis/connect.js';

/**
 * Connects to both servers (a clear error if either is unreachable), runs `fn`, and turns a
 * server lost midway into one line that says what to do; always disconnects.
 */
export async function withServers<T>(config: Config, what: string, fn: (pool: pg.Pool, redis: RedisClient) => Promise<T>): Promise<T> {
  const pool = createPool(config.databaseUrl, { max: 1 });
  let redis: RedisClient | undefined;
  try {
    await checkPool(pool, config.databaseUrl);
    redis = await connectRedis(config.redisUrl);
    return await fn(pool, redis);
  } catch (error) {
    if (isRedisError(error)) throw describeRedisFailure(error, config.redisUrl, what);
    throw describePgError(error, config.databaseUrl);
  } finally {
    redis?.disconnect();
    await pool.end().catch(() => undefined);
  }
}
