import type { Redis } from 'ioredis';
import { changeStreamKey, escapeGlob, keyLayout } from '../redis/keys.js';
import { deleteMatching } from '../redis/scan.js';
import { stateKey } from '../redis/state.js';
import type { InstalledTable } from './state.js';

/** Deletes every Redis key of the given installed tables (from their registered layout), and the daemon's state hash. */
export async function purgeRedisKeys(redis: Redis, tables: readonly InstalledTable[], installId: string | null): Promise<number> {
  // The default group's state hash, and those of named groups (`<key>:<group>`).
  let deleted = installId === null ? 0 : (await redis.unlink(stateKey(installId))) + (await deleteMatching(redis, `${escapeGlob(stateKey(installId))}:*`));
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
