import type { RedisClient } from './cluster.js';

/**
 * The oldest Redis the tool's commands run on: multi-field HSET and UNLINK are Redis 4.0's,
 * XADD (a table's `stream` option) 5.0's.
 */
export const MIN_REDIS_VERSION: readonly [number, number] = [5, 0];

/** major.minor of `redis_version` in an INFO server reply; null when it has none. */
export function redisVersionOf(info: string): { text: string; major: number; minor: number } | null {
  const m = /^redis_version:((\d+)\.(\d+)[^\r\n]*)/m.exec(info);
  return m === null ? null : { text: m[1]!, major: Number(m[2]), minor: Number(m[3]) };
}

/** Why this server cannot be used, or undefined when it can (or its version is unknown). */
/** `where`: the server, as describeRedisUrl prints it. */
export function unsupportedRedis(info: string, where: string): string | undefined {
  const version = redisVersionOf(info);
  if (version === null) return undefined;
  const [major, minor] = MIN_REDIS_VERSION;
  if (version.major > major || (version.major === major && version.minor >= minor)) return undefined;
  return `Redis ${version.text} at ${where} is too old: pg-redis-mirror needs Redis ${major}.${minor} or later; upgrade the server`;
}

/**
 * The server's INFO, or '' when this user may not run INFO (an ACL without @dangerous): the
 * version then goes unchecked rather than refusing a server that may well be new enough.
 */
export async function serverInfo(redis: RedisClient): Promise<string> {
  try {
    return await redis.info('server');
  } catch (error) {
    if (error instanceof Error && /NOPERM|unknown command/i.test(error.message)) return '';
    throw error;
  }
}
