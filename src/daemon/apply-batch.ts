import type pg from 'pg';
import type { RedisClient } from '../redis/cluster.js';
import { scanKeys } from '../redis/scan.js';
import { isStateKey } from '../redis/state.js';
import { isChangeStreamKey } from '../redis/keys.js';
import { announceTruncate } from '../redis/events.js';
import { writeFramedCalls, writeKeys, type Fence, type FramedCall, type KeyWrite } from '../redis/replace.js';
import { rowToWrite, type TablePlan } from './table-plan.js';
import { deleteBlock, writeBlock, type CommandBlock } from '../redis/fenced-block.js';
import type { WritePipe } from './write-pipe.js';

export interface BatchResult {
  entries: number;
  /** Distinct keys re-read and written (or deleted). */
  keys: number;
  truncates: number;
  /** Tables no longer mirrored whose journal rows were dropped without effect. */
  skipped: number;
  /** Keys written (or deleted) per table, by display name; what metrics count per table. */
  tables: Record<string, number>;
  /** From the claim to the commit that made the batch final (set at commit; 0 until then). */
  durationMs: number;
}

/** Re-reads the current rows of `keys` (one query) and turns them into key writes. */
export async function readWrites(client: pg.ClientBase, plan: TablePlan, keys: Iterable<string[]>): Promise<KeyWrite[]> {
  const columns: string[][] = plan.keyColumns.map(() => []);
  for (const key of keys) for (let i = 0; i < columns.length; i++) columns[i]!.push(key[i]!);
  const result = await client.query<(string | null)[]>({ name: plan.readName, text: plan.readSql, values: columns, rowMode: 'array' });
  return result.rows.map((row) => rowToWrite(plan, row));
}

/** A batch read from PostgreSQL and ready to be written: per table, in journal order. */
export interface ReadBatch {
  result: BatchResult;
  steps: BatchStep[];
}

export interface BatchStep {
  truncatePattern: string | undefined;
  writes: KeyWrite[];
  /** Or the same as script calls framed by PostgreSQL (standalone Redis). */
  calls: FramedCall[];
  /** Or as plain commands for MULTI ... EXEC (standalone Redis, tables without change events). */
  blocks: CommandBlock[];
  /** The table's options that apply to its writes (TTL, change events). */
  plan: Pick<TablePlan, 'prefix' | 'ttl' | 'events'>;
}

/**
 * The Redis half of a batch: each table's TRUNCATE (if any) before its keys, all fenced.
 * A TRUNCATE is announced as one event, after its keys are gone (not one per key). With a
 * pipe (see WritePipe.usable), deletes and command blocks go through it as MULTI ... EXEC.
 */
export async function writeBatch(redis: RedisClient, batch: ReadBatch, fence: Fence, pipe?: WritePipe): Promise<void> {
  for (const step of batch.steps) {
    const { prefix, ttl, events } = step.plan;
    if (step.truncatePattern !== undefined) {
      for await (const keys of scanKeys(redis, step.truncatePattern)) {
        // The change streams are not rows: a broad key template matches them too.
        const rows = keys.filter((key) => !isStateKey(key) && !isChangeStreamKey(prefix, key));
        if (pipe !== undefined) {
          if (rows.length > 0) await writeBlock(await pipe.get(), deleteBlock(rows), fence);
        } else {
          await writeKeys(redis, rows.map((key) => ({ key, delete: true as const })), fence);
        }
      }
      if (events !== null) await announceTruncate(redis, events, step.truncatePattern, fence);
    }
    if (step.blocks.length > 0) {
      if (pipe === undefined) throw new Error('writeBatch: command blocks need a pipe');
      const connection = await pipe.get();
      for (const block of step.blocks) await writeBlock(connection, block, fence);
    }
    const options = { ...(ttl === null ? {} : { ttl }), events };
    await Promise.all([writeKeys(redis, step.writes, fence, options), writeFramedCalls(redis, step.calls, fence, options)]);
  }
}
