import { Redis, type RedisOptions } from 'ioredis';
import { UserError, errorMessage } from '../errors.js';
import { redactUrl } from '../db/errors.js';

export type RedisClient = Redis;

export interface RedisConnectOptions {
  /** Keep reconnecting forever with backoff (the daemon) instead of failing fast (one-shot commands). */
  persistent?: boolean;
}

export function describeRedisUrl(redisUrl: string): string {
  try {
    const url = new URL(redisUrl);
    return `${url.hostname}:${url.port || '6379'}`;
  } catch {
    return '(unparsable Redis URL)';
  }
}

/** Connects and checks the server answers; failures are one UserError line naming the fix. */
export async function connectRedis(redisUrl: string, options: RedisConnectOptions = {}): Promise<Redis> {
  const persistent = options.persistent ?? false;
  let url: URL;
  try {
    url = new URL(redisUrl);
  } catch {
    throw new UserError(`Redis URL ${redactUrl(redisUrl)} is not a valid URL; use redis://host:port[/db] (--redis-url or REDIS_URL)`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new UserError(`Redis URL must start with redis:// or rediss://, not ${url.protocol}// (--redis-url or REDIS_URL)`);
  }
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    // A command must fail rather than wait while Redis is away: the daemon then keeps the
    // journal rows and retries the batch.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    retryStrategy: persistent ? (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000) : () => null,
  };
  const redis = new Redis(redisUrl, redisOptions);
  let lastError: unknown;
  redis.on('error', (error: unknown) => {
    lastError = error;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    const reason = errorMessage(lastError ?? error);
    throw new UserError(
      `cannot connect to Redis at ${describeRedisUrl(redisUrl)}: ${redactUrl(reason)}; is it running? check --redis-url / REDIS_URL`,
      { cause: error },
    );
  }
  return redis;
}

/** A failure of Redis during work (not at connect): one line that says what to do. */
export function describeRedisFailure(error: unknown, redisUrl: string, what: string): UserError {
  return new UserError(
    `lost Redis at ${describeRedisUrl(redisUrl)} during ${what}: ${redactUrl(errorMessage(error)).replace(/\.$/, '')}; run the command again once Redis is back (it starts over, which is safe)`,
    { cause: error },
  );
}

/** Errors raised by ioredis rather than by PostgreSQL. */
export function isRedisError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error.name === 'ReplyError' || error.name === 'MaxRetriesPerRequestError' || /Connection is closed|Stream isn't writeable|enableOfflineQueue/.test(error.message);
}
