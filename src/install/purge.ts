import type { RedisClient } from '../redis/cluster.js';
import { changeStreamKey, escapeGlob, keyLayout } from '../redis/keys.js';
import { deleteMatching } from '../redis/scan.js';
import { STATE_KEY_PREFIX } from '../redis/state.js';
import type { InstalledTable } from './state.js';

/** Deletes every Redis key of the given installed tables (from their registered layout), and the daemon's state (every group's; in a cluster, the fence key in each slot too). */
export async function purgeRedisKeys(redis: RedisClient, tables: readonly InstalledTable[], installId: string | null): Promise<number> {
  let deleted = installId === null ? 0 : await deleteMatching(redis, `${escapeGlob(STATE_KEY_PREFIX)}*${escapeGlob(installId)}*`);
  for (const table of tables) {
    const layout = keyLayout({
      prefix: table.spec.prefix,
      schema: table.schema,
      name: table.name,
      keyColumns: table.spec.keyColumns,
      keyTemplate: table.spec.keyTemplate,
    });
    deleted += await deleteMatching(redis, layout.pattern);
    // The change stream is the tool's key too (its name matches no table pattern).
    if (table.spec.stream !== undefined) deleted += await redis.unlink(changeStreamKey(table.spec.prefix, table.schema, table.name));
  }
  return deleted;
}
