import type { Redis } from 'ioredis';
import { keyLayout } from '../redis/keys.js';
import { deleteMatching } from '../redis/scan.js';
import type { InstalledTable } from './state.js';

/** Deletes every Redis key of the given installed tables (from their registered layout). */
export async function purgeRedisKeys(redis: Redis, tables: readonly InstalledTable[]): Promise<number> {
  let deleted = 0;
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
