import type { Redis } from 'ioredis';

/**
 * Whether the connection's database holds any key with a TTL, from INFO keyspace. A copy of
 * a table without a `ttl` must remove a TTL left from when it had one (PERSIST, a command per
 * key and about a sixth of Redis' work in a copy); where no key of the database has a TTL
 * there is none to remove. The daemon sets TTLs only on keys of tables that have the option,
 * and a table whose option changes is copied again after the change. Unknown (INFO refused,
 * a reply not understood): true.
 */
export async function hasExpiringKeys(redis: Redis): Promise<boolean> {
  try {
    const info = await redis.info('keyspace');
    const db = redis.options.db ?? 0;
    if (!/^# Keyspace/m.test(info)) return true;
    const line = new RegExp(`^db${db}:keys=\\d+,expires=(\\d+)`, 'm').exec(info);
    return line !== null && line[1] !== '0';
  } catch {
    return true;
  }
}
