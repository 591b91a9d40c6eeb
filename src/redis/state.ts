import type { Redis } from 'ioredis';

/**
 * The daemon keeps one hash of its own in Redis, named after the install (meta 'install_id'):
 * - epoch: the generation of the data in Redis, also recorded in PostgreSQL. When Redis comes
 *   back without it (restarted without persistence, FLUSHALL, failover to an empty replica),
 *   the mirror is gone and the daemon copies the tables again by itself.
 * - leader: the fencing token of the daemon that leads (see replace.ts).
 */
export const STATE_KEY_PREFIX = 'pg-redis-mirror:state:';

/** One hash per install and daemon group (the default group's has no suffix, as before groups). */
export function stateKey(installId: string, group = 'default'): string {
  return group === 'default' ? `${STATE_KEY_PREFIX}${installId}` : `${STATE_KEY_PREFIX}${installId}:${group}`;
}

/** Keys of the tool's own, which table patterns may match but which are no table's rows. */
export function isStateKey(key: string): boolean {
  return key.startsWith(STATE_KEY_PREFIX);
}

/** Raises the leader token to `token` unless a newer leader already raised it further; true if ours is current. */
const RAISE_LUA = `
local current = redis.call('HGET', KEYS[1], 'leader')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'leader', ARGV[1])
return 1
`;

export async function raiseLeaderToken(redis: Redis, key: string, token: string): Promise<boolean> {
  return (await redis.eval(RAISE_LUA, 1, key, token)) === 1;
}

export async function readLeaderToken(redis: Redis, key: string): Promise<string | null> {
  return redis.hget(key, 'leader');
}

export async function readEpoch(redis: Redis, key: string): Promise<string | null> {
  return redis.hget(key, 'epoch');
}

export async function writeEpoch(redis: Redis, key: string, epoch: string): Promise<void> {
  await redis.hset(key, 'epoch', epoch);
}
