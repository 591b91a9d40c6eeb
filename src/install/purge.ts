import type { RedisClient } from '../redis/cluster.js';
import { keyLayout } from '../redis/keys.js';
import { deleteMatching, unlinkKeys } from '../redis/scan.js';
import { stateKeys } from '../redis/state.js';
import type { InstalledTable } from './state.js';

/** Deletes every Redis key of the given installed tables (from their registered layout), and the daemon's state (in a cluster, its fence key in each slot too). */
export async function purgeRedisKeys(redis: RedisClient, tables: readonly InstalledTable[], installId: string | null): Promise<number> {
  let deleted = installId === null ? 0 : await unlinkKeys(redis, stateKeys(redis, installId));
  for (const table of tables) {
    const layout = keyLayout({
      prefix: table.spec.prefix,
      schema: table.schema,
      name: table.name,
      keyColumns: table.spec.keyColumns,
      keyTemplate: table.spec.keyTemplate,
    });
    deleted += await deleteMatching(redis, layout.pattern);
  }
  return deleted;
}
