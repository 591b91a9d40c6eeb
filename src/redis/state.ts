import { isCluster, SLOT_COUNT, slotTag, type RedisClient } from './cluster.js';
import type { Fence } from './replace.js';

/**
 * The daemon keeps one hash of its own in Redis, named after the install (meta 'install_id'):
 * - epoch: the generation of the data in Redis, also recorded in PostgreSQL. When Redis comes
 *   back without it (restarted without persistence, FLUSHALL, failover to an empty replica),
 *   the mirror is gone and the daemon copies the tables again by itself.
 * - leader: the fencing token of the daemon that leads (see replace.ts).
 * In a Redis Cluster a script can only read keys of the slot it writes, so the leader token is
 * also kept in one fence hash per slot (see slotStateKey); the epoch stays in the one hash.
 */
export const STATE_KEY_PREFIX = 'pg-redis-mirror:state:';

/** One hash per install and daemon group (the default group's has no suffix, as before groups). */
export function stateKey(installId: string, group = 'default'): string {
  return group === 'default' ? `${STATE_KEY_PREFIX}${installId}` : `${STATE_KEY_PREFIX}${installId}:${group}`;
}

/**
 * The fence key of a slot in a Redis Cluster: `pg-redis-mirror:state:{<tag>}:<install id>`,
 * where the hash tag puts it in `slot`. It shares the state prefix, so table scans skip it.
 */
export function slotStateKey(installId: string, slot: number): string {
  return `${STATE_KEY_PREFIX}{${slotTag(slot)}}:${installId}`;
}

/** Every key of the daemon's state: the state hash, and in a cluster the fence hash of each slot. */
export function stateKeys(redis: RedisClient, installId: string): string[] {
  const keys = [stateKey(installId)];
  if (isCluster(redis)) for (let slot = 0; slot < SLOT_COUNT; slot++) keys.push(slotStateKey(installId, slot));
  return keys;
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

export async function raiseLeaderToken(redis: RedisClient, key: string, token: string): Promise<boolean> {
  return (await redis.eval(RAISE_LUA, 1, key, token)) === 1;
}

/** Script calls in flight at once while raising the token in every slot's fence key. */
const RAISE_CONCURRENCY = 2048;

/**
 * Raises the leader token to `token` in the state hash and, in a cluster, in the fence key of
 * every slot (16384 script calls, sent in parallel, about a second at worst); only then may the
 * leader write, since every slot it writes must refuse the old leader. The state hash goes
 * first, so two daemons racing (one of them without the leader lock by then) are told apart
 * there. Returns the fence to write with, or null when a newer leader raised a token further.
 */
export async function raiseFence(redis: RedisClient, installId: string, token: string): Promise<Fence | null> {
  const key = stateKey(installId);
  if (!(await raiseLeaderToken(redis, key, token))) return null;
  if (!isCluster(redis)) return { key, token };
  const slotKeys = stateKeys(redis, installId).slice(1);
  for (let first = 0; first < SLOT_COUNT; first += RAISE_CONCURRENCY) {
    const raised = await Promise.all(slotKeys.slice(first, first + RAISE_CONCURRENCY).map((slotKey) => raiseLeaderToken(redis, slotKey, token)));
    if (raised.includes(false)) return null;
  }
  return { key, token, keyInSlot: (slot) => slotKeys[slot]! };
}

/**
 * In a cluster, whether a master lost the fence keys of its slots (a failover to an empty
 * replica, a restart without persistence): the epoch lives on one master only, so losing
 * another's data would go unnoticed. One fence key per master is checked (the token is raised
 * in all of them before any write). Always false for a standalone server, where the epoch tells.
 */
export async function fenceLost(redis: RedisClient, installId: string): Promise<boolean> {
  if (!isCluster(redis)) return false;
  const slotPerMaster = new Map<string, number>();
  redis.slots.forEach((nodes, slot) => {
    const master = nodes[0];
    if (master !== undefined && !slotPerMaster.has(master)) slotPerMaster.set(master, slot);
  });
  const present = await Promise.all([...slotPerMaster.values()].map((slot) => redis.hexists(slotStateKey(installId, slot), 'leader')));
  return present.includes(0);
}

export async function readLeaderToken(redis: RedisClient, key: string): Promise<string | null> {
  return redis.hget(key, 'leader');
}

export async function readEpoch(redis: RedisClient, key: string): Promise<string | null> {
  return redis.hget(key, 'epoch');
}

export async function writeEpoch(redis: RedisClient, key: string, epoch: string): Promise<void> {
  await redis.hset(key, 'epoch', epoch);
}
