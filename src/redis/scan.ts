import { groupBySlot, isCluster, keyHolders, type RedisClient } from './cluster.js';

/**
 * Every key matching a SCAN pattern, page by page (never KEYS, which blocks Redis). In a
 * cluster each master is scanned in turn: SCAN sees one server's keys. Slots that move between
 * masters during the scan (resharding) may be missed or seen twice.
 */
export async function* scanKeys(redis: RedisClient, pattern: string, count = 1000): AsyncGenerator<string[]> {
  for (const node of keyHolders(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (keys.length > 0) yield keys;
    } while (cursor !== '0');
  }
}

/** UNLINKs the keys; in a cluster one command per hash slot (a command's keys must share one). Returns how many existed. */
export async function unlinkKeys(redis: RedisClient, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (!isCluster(redis)) return redis.unlink(...keys);
  const counts = await Promise.all([...groupBySlot(keys).values()].map((group) => redis.unlink(...group)));
  return counts.reduce((sum, n) => sum + n, 0);
}

/** Deletes every key matching the pattern; returns how many were deleted. */
export async function deleteMatching(redis: RedisClient, pattern: string): Promise<number> {
  let deleted = 0;
  for await (const keys of scanKeys(redis, pattern)) deleted += await unlinkKeys(redis, keys);
  return deleted;
}
