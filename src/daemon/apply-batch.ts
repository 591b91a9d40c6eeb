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

/** A batch read from PostgreSQL and ready to be written: per table, in journal order. */
export interface ReadBatch {
  result: BatchResult;
  steps: { truncatePattern: string | undefined; writes: KeyWrite[] }[];
}

/** Re-reads the current rows of every key in `entries`: the PostgreSQL half of a batch. */
export async function readBatch(client: pg.ClientBase, plans: ReadonlyMap<number, TablePlan>, entries: readonly JournalEntry[]): Promise<ReadBatch> {
  const batch: ReadBatch = { result: { entries: entries.length, keys: 0, truncates: 0, skipped: 0 }, steps: [] };
  for (const [rel, changes] of groupByTable(entries)) {
    const plan = plans.get(rel);
    if (plan === undefined) {
      batch.result.skipped += 1;
      continue;
    }
    if (changes.truncate) batch.result.truncates += 1;
    const writes = changes.keys.size === 0 ? [] : await readWrites(client, plan, changes.keys.values());
    batch.result.keys += writes.length;
    batch.steps.push({ truncatePattern: changes.truncate ? plan.layout.pattern : undefined, writes });
  }
  return batch;
}

/** The Redis half of a batch: each table's TRUNCATE (if any) before its keys. */
export async function writeBatch(redis: Redis, batch: ReadBatch): Promise<void> {
  for (const step of batch.steps) {
    if (step.truncatePattern !== undefined) await deleteMatching(redis, step.truncatePattern);
    await writeKeys(redis, step.writes);
  }
}
