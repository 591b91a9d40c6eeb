import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { UserError, errorMessage } from '../errors.js';
import { redactUrl } from '../db/errors.js';
import type { RedisClient } from './cluster.js';
import { takeRedisTls } from './tls.js';
import { serverInfo, unsupportedRedis } from './version.js';

export type { RedisClient } from './cluster.js';

export interface RedisConnectOptions {
  /** Keep reconnecting forever with backoff (the daemon) instead of failing fast (one-shot commands). */
  persistent?: boolean;
}

export function describeRedisUrl(redisUrl: string): string {
  try {
    return parseRedisUrl(redisUrl)
      .seeds.map((url) => `${url.hostname}:${url.port || '6379'}`)
      .join(',');
  } catch {
    return '(unparsable Redis URL)';
  }
}

/** The cluster schemes, and the scheme each seed node is then reached with. */
const CLUSTER_SCHEMES = new Map([
  ['redis+cluster:', 'redis:'],
  ['rediss+cluster:', 'rediss:'],
]);

/**
 * A Redis URL as one URL per server to contact: the server itself, or a cluster's seed nodes.
 * `redis+cluster://[[user]:password@]host:port,host:port` (`rediss+cluster://` with TLS) lists
 * seed nodes, each then a redis:// (rediss://) URL with the same credentials and parameters:
 * WHATWG URL parsing refuses a comma-separated host list, so it is split here first.
 */
export function parseRedisUrl(redisUrl: string): { cluster: boolean; seeds: URL[] } {
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(redisUrl)?.[1]?.toLowerCase();
  const seedScheme = scheme === undefined ? undefined : CLUSTER_SCHEMES.get(scheme);
  if (scheme === undefined || seedScheme === undefined) {
    let url: URL;
    try {
      url = new URL(redisUrl);
    } catch {
      // Not echoed: an unparsable URL may not be redactable, and it may hold a password.
      throw new UserError(`Redis URL is not a valid URL; use redis://[[user]:password@]host:port[/db] (--redis-url or REDIS_URL)`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new UserError(`Redis URL must start with redis://, rediss://, redis+cluster:// or rediss+cluster://, not ${url.protocol}// (--redis-url or REDIS_URL)`);
    }
    return { cluster: false, seeds: [url] };
  }
  const rest = redisUrl.slice(scheme.length + 2);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd === -1 ? '' : rest.slice(authorityEnd);
  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? '' : authority.slice(0, at + 1);
  const hosts = (at === -1 ? authority : authority.slice(at + 1)).split(',');
  const seeds = hosts.map((host) => {
    try {
      if (host === '') throw new Error('empty host');
      return new URL(`${seedScheme}//${userinfo}${host}${tail}`);
    } catch {
      throw new UserError(`Redis URL is not a valid cluster URL; use ${scheme}//[[user]:password@]host:port,host:port (--redis-url or REDIS_URL)`);
    }
  });
  const db = seeds[0]!.pathname.replace(/^\//, '');
  if (db !== '' && db !== '0') {
    throw new UserError(`a Redis Cluster has only database 0; remove /${db} from the Redis URL (--redis-url or REDIS_URL)`);
  }
  return { cluster: true, seeds };
}

/**
 * Connects and checks the server answers; failures are one UserError line naming the fix.
 * A cluster URL (see parseRedisUrl) gives ioredis' Cluster client, which routes each command
 * by its key's hash slot and follows the cluster's topology.
 */
export async function connectRedis(redisUrl: string, options: RedisConnectOptions = {}): Promise<RedisClient> {
  const persistent = options.persistent ?? false;
  const { cluster, seeds } = parseRedisUrl(redisUrl);
  const url = seeds[0]!;
  const tls = takeRedisTls(url);
  for (const seed of seeds.slice(1)) takeRedisTls(seed);
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
  const redis: RedisClient = cluster ? new Cluster(seeds.map(seedNode), clusterOptions(url, redisOptions, persistent)) : new Redis(url.toString(), redisOptions);
  let lastError: unknown;
  redis.on('error', (error: unknown) => {
    lastError = error;
  });
  let info: string;
  try {
    await redis.connect();
    info = await serverInfo(redis);
  } catch (error) {
    redis.disconnect();
    throw describeRedisConnectError(lastError ?? error, redisUrl);
  }
  const problem = unsupportedRedis(info, describeRedisUrl(redisUrl));
  if (problem !== undefined) {
    redis.disconnect();
    throw new UserError(problem);
  }
  return redis;
}

function seedNode(url: URL): { host: string; port: number } {
  return { host: url.hostname, port: Number(url.port || '6379') };
}

/**
 * The cluster's options: each node connection gets the URL's credentials and TLS and the
 * standalone timeouts; the cluster itself fails commands rather than queueing them (as the
 * standalone client does), and retries its topology only for the daemon.
 */
function clusterOptions(url: URL, redisOptions: RedisOptions, persistent: boolean): ClusterOptions {
  const { retryStrategy: _retry, lazyConnect: _lazy, enableOfflineQueue: _queue, ...nodeOptions } = redisOptions;
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    clusterRetryStrategy: persistent ? (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000) : () => null,
    redisOptions: {
      ...nodeOptions,
      ...(username === '' ? {} : { username }),
      ...(password === '' ? {} : { password }),
    },
  };
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
  // ioredis' Cluster reports every failure to read the topology alike: unreachable seeds, or a
  // server that is not in cluster mode.
  if (/^rediss?\+cluster:/i.test(redisUrl) && /slots cache/i.test(reason)) {
    return new UserError(
      `cannot connect to the Redis Cluster at ${describeRedisUrl(redisUrl)}: no seed node answered with the cluster's slots; are they running, in cluster mode (use redis:// for a single server)? check --redis-url / REDIS_URL`,
      { cause: error },
    );
  }
  const tlsHint = /^rediss[:+]/.test(redisUrl)
    ? ' (rediss:// uses TLS: does the server listen with TLS on that port?)'
    : /ECONNRESET|closed/i.test(reason)
      ? ' (if the server uses TLS, use a rediss:// or rediss+cluster:// URL)'
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
  return error.name === 'ReplyError' || error.name === 'RedisPipeError' || error.name === 'MaxRetriesPerRequestError' || /Connection is closed|Stream isn't writeable|enableOfflineQueue/.test(error.message);
}
