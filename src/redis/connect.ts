import { Redis, type RedisOptions } from 'ioredis';
import { UserError, errorMessage } from '../errors.js';
import { redactUrl } from '../db/errors.js';
import { takeRedisTls } from './tls.js';

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
    // Not echoed: an unparsable URL may not be redactable, and it may hold a password.
    throw new UserError(`Redis URL is not a valid URL; use redis://[[user]:password@]host:port[/db] (--redis-url or REDIS_URL)`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new UserError(`Redis URL must start with redis:// or rediss://, not ${url.protocol}// (--redis-url or REDIS_URL)`);
  }
  const tls = takeRedisTls(url);
  const redisOptions: RedisOptions = {
    ...(tls === undefined ? {} : { tls }),
    lazyConnect: true,
    // A command must fail rather than wait while Redis is away: the daemon then keeps the
    // journal rows and retries the batch.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    // After a refused login the server leaves the socket open, and ioredis waits this long
    // before destroying it (default 2 s): a failing command would linger before exiting.
    disconnectTimeout: 200,
    retryStrategy: persistent ? (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000) : () => null,
  };
  const redis = new Redis(url.toString(), redisOptions);
  let lastError: unknown;
  redis.on('error', (error: unknown) => {
    lastError = error;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw describeRedisConnectError(lastError ?? error, redisUrl);
  }
  return redis;
}

/** Why a connection failed, and what to change: the login, the TLS settings, or the address. */
function describeRedisConnectError(error: unknown, redisUrl: string): UserError {
  const where = `Redis at ${describeRedisUrl(redisUrl)}`;
  const reason = redactUrl(errorMessage(error)).replace(/\.$/, '');
  const code = (error as { code?: unknown }).code;
  if (/^(WRONGPASS|NOAUTH)|AUTH.*without any password|invalid password|invalid username-password/i.test(reason)) {
    return new UserError(`cannot log in to ${where}: ${reason}; check the user and password in --redis-url / REDIS_URL (the user before the colon, empty for requirepass; the password after it)`, { cause: error });
  }
  if (/^NOPERM/.test(reason)) {
    return new UserError(`${where}: ${reason}; the Redis user needs the commands and keys of the README's "Privileges"`, { cause: error });
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new UserError(
      `cannot connect to ${where}: its TLS certificate is not for this host name (${reason.replace(/[:\s]+$/, '')}); connect with the host name the certificate names, or add tls_verify=ca to check only the CA`,
      { cause: error },
    );
  }
  if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return new UserError(
      `cannot connect to ${where}: its TLS certificate was not accepted (${reason}); pass the CA that signed it with ?tls_ca=/path/to/ca.crt in the rediss:// URL (tls_verify=ca skips the host name check)`,
      { cause: error },
    );
  }
  const tlsHint = redisUrl.startsWith('rediss:')
    ? ' (rediss:// uses TLS: does the server listen with TLS on that port?)'
    : /ECONNRESET|closed/i.test(reason)
      ? ' (if the server uses TLS, use a rediss:// URL)'
      : '';
  return new UserError(`cannot connect to ${where}: ${reason}; is it running?${tlsHint} check --redis-url / REDIS_URL`, { cause: error });
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
