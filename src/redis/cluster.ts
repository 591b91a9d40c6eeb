import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';

/** A standalone server or a Redis Cluster (see connectRedis). */
export type RedisClient = Redis | Cluster;

export const SLOT_COUNT = 16384;

export function isCluster(redis: RedisClient): redis is Cluster {
  return redis.isCluster;
}

/** The hash slot of a key, as the cluster computes it (a {hash tag} decides when present). */
export function slotOf(key: string): number {
  return calculateSlot(key);
}

/** Keys grouped by hash slot, each group in the order given: what one multi-key command may carry in a cluster. */
export function groupBySlot(keys: readonly string[]): Map<number, string[]> {
  const groups = new Map<number, string[]>();
  for (const key of keys) {
    const slot = slotOf(key);
    const group = groups.get(slot);
    if (group === undefined) groups.set(slot, [key]);
    else group.push(key);
  }
  return groups;
}

/**
 * The servers that hold keys: the server itself, or every master of a cluster (replicas hold
 * copies only). Commands that see one server's keyspace (SCAN, SCRIPT LOAD) go to each.
 */
export function keyHolders(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

let slotTags: string[] | undefined;

/**
 * For each slot, a short hash tag whose keys land in it. Slots are CRC16 values, so there is
 * no inverse: count up in base 36 until every slot has a tag (a few hundred thousand CRC16s),
 * keeping the first, shortest, tag per slot. Computed once, when first needed.
 */
export function slotTag(slot: number): string {
  if (slotTags === undefined) {
    const tags: string[] = new Array<string>(SLOT_COUNT);
    let found = 0;
    for (let n = 0; found < SLOT_COUNT; n++) {
      const tag = n.toString(36);
      const s = calculateSlot(tag);
      if (tags[s] === undefined) {
        tags[s] = tag;
        found++;
      }
    }
    slotTags = tags;
  }
  return slotTags[slot]!;
}
