import type pg from 'pg';
import type { Redis } from 'ioredis';
import { deleteMatching } from '../redis/scan.js';
import { writeKeys, type KeyWrite } from '../redis/replace.js';
import type { JournalEntry } from './journal.js';
import { rowToWrite, type TablePlan } from './table-plan.js';

export interface TableChanges {
  /** A TRUNCATE in the batch: the table's keys go first, and earlier keys need no work. */
  truncate: boolean;
  keys: Map<string, string[]>;
}

export interface BatchResult {
  entries: number;
  /** Distinct keys re-read and written (or deleted). */
  keys: number;
  truncates: number;
  /** Journal entries of tables that are no longer mirrored: dropped without effect. */
  skipped: number;
}

/** Folds journal entries (in id order) into distinct keys per table. */
export function groupByTable(entries: readonly JournalEntry[]): Map<number, TableChanges> {
  const tables = new Map<number, TableChanges>();
  for (const entry of entries) {
    let changes = tables.get(entry.rel);
    if (changes === undefined) {
      changes = { truncate: false, keys: new Map() };
      tables.set(entry.rel, changes);
    }
    if (entry.op === 't') {
      // Every key written before the TRUNCATE is wiped by it; rows that exist now were
      // journaled after it and are still in this map's future.
      changes.truncate = true;
      changes.keys.clear();
      continue;
    }
    for (const key of entry.keys) changes.keys.set(key.length === 1 ? key[0]! : key.join('\u0000'), key);
  }
  return tables;
}

/** Re-reads the current rows of `keys` (one query) and turns them into key writes. */
export async function readWrites(client: pg.ClientBase, plan: TablePlan, keys: Iterable<string[]>): Promise<KeyWrite[]> {
  const columns: string[][] = plan.keyColumns.map(() => []);
  for (const key of keys) for (let i = 0; i < columns.length; i++) columns[i]!.push(key[i]!);
  const result = await client.query<(string | null)[]>({ name: plan.readName, text: plan.readSql, values: columns, rowMode: 'array' });
  return result.rows.map((row) => rowToWrite(plan, row));
}

export async function applyChanges(
  client: pg.ClientBase,
  redis: Redis,
  plans: ReadonlyMap<number, TablePlan>,
  entries: readonly JournalEntry[],
): Promise<BatchResult> {
  const result: BatchResult = { entries: entries.length, keys: 0, truncates: 0, skipped: 0 };
  for (const [rel, changes] of groupByTable(entries)) {
    const plan = plans.get(rel);
    if (plan === undefined) {
      result.skipped += 1;
      continue;
    }
    if (changes.truncate) {
      await deleteMatching(redis, plan.layout.pattern);
      result.truncates += 1;
    }
    if (changes.keys.size === 0) continue;
    const writes = await readWrites(client, plan, changes.keys.values());
    await writeKeys(redis, writes);
    result.keys += writes.length;
  }
  return result;
}
