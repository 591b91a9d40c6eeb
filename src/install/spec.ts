import type { Db } from '../db/kysely.js';
import type { TableConfig, ValueFormat } from '../config/load.js';
import { formatTableName } from '../config/table-name.js';
import { findTable, similarTables, type ColumnInfo, type TableInfo } from '../catalog/tables.js';
import { UserError } from '../errors.js';
import { parseKeyTemplate } from '../redis/keys.js';
import { checkFilter } from './filter.js';

/** Per-table options as stored in the registry; the daemon needs nothing else. */
export interface StoredSpec {
  keyColumns: string[];
  /** Mirrored columns, or null for "all columns but `exclude`", resolved when the daemon loads. */
  columns: string[] | null;
  exclude: string[];
  format: ValueFormat;
  keyTemplate: string | null;
  prefix: string;
  /** The daemon group; absent for the default group (so installs from before groups compare equal). */
  group?: string;
  /**
   * The three below are present only when set, so that the spec (and its hash) of a table
   * configured without them is what it was before they existed: an upgrade changes nothing.
   * ttl: seconds, set on every key written (by the daemon, sync and verify --repair).
   */
  ttl?: number;
  /** Each change the daemon applies is also appended to the table's change stream. */
  stream?: { maxLen: number };
  /** ... and published on this channel. */
  publish?: string;
  /**
   * Row filter as PostgreSQL printed it back at install (see install/filter.ts); absent when
   * every row is mirrored, so that the specs of unfiltered tables, and their hashes, stay as
   * they were before filters existed.
   */
  filter?: string;
  /** Columns the filter reads (the daemon must be able to read them, mirrored or not). */
  filterColumns?: string[];
}

export interface TableSpec {
  schema: string;
  name: string;
  oid: number;
  /** Partitioned: its partitions get triggers too (see sql/table.sql). */
  partitioned: boolean;
  keyColumns: ColumnInfo[];
  stored: StoredSpec;
}

/** Checks one configured table against the catalog; every problem is a UserError naming the fix. */
export async function resolveTableSpec(db: Db, config: TableConfig): Promise<TableSpec> {
  const display = formatTableName(config);
  const info = await findTable(db, config);
  if (info === null) {
    const similar = await similarTables(db, config);
    const hint = similar.length > 0 ? `; did you mean ${similar.join(' or ')}? (names are case-sensitive)` : '; check the name and the database';
    throw new UserError(`table ${display} does not exist${hint}`);
  }
  if (info.kind === 'other') throw new UserError(`${display} is not a table (views and other relations cannot be mirrored)`);
  if (info.partitionOf !== null) {
    // Statements on the partitioned table fire no statement trigger of its partitions: a
    // partition's own triggers would miss every write made through its parent.
    const root = formatTableName(info.partitionOf);
    throw new UserError(`${display} is a partition of ${root}; mirror ${root} instead, whose triggers capture every partition`);
  }
  const keyColumns = resolveKey(info, config, display);
  const columnNames = new Set(info.columns.map((c) => c.name));
  for (const [field, list] of [['columns', config.columns], ['exclude', config.exclude]] as const) {
    for (const column of list ?? []) {
      if (!columnNames.has(column)) {
        throw new UserError(`table ${display}: "${field}" names column "${column}", which does not exist; it has ${[...columnNames].join(', ')}`);
      }
    }
  }
  if (config.exclude !== undefined && config.exclude.length >= info.columns.length) {
    throw new UserError(`table ${display}: "exclude" leaves no column to mirror`);
  }
  const keyTemplate = config.keyTemplate ?? null;
  if (keyTemplate !== null) parseKeyTemplate(keyTemplate, keyColumns.map((c) => c.name));
  const filter = config.filter === undefined ? null : await checkFilter(db, info, config.filter, display);
  return {
    schema: config.schema,
    name: config.name,
    oid: info.oid,
    partitioned: info.kind === 'partitioned table',
    keyColumns,
    stored: {
      keyColumns: keyColumns.map((c) => c.name),
      columns: config.columns ?? null,
      exclude: config.exclude ?? [],
      format: config.format,
      keyTemplate,
      prefix: config.prefix,
      ...(config.group === undefined ? {} : { group: config.group }),
      ...(config.ttl === undefined ? {} : { ttl: config.ttl }),
      ...(config.stream === undefined ? {} : { stream: { maxLen: config.stream.maxLen } }),
      ...(config.publish === undefined ? {} : { publish: config.publish }),
      ...(filter === null ? {} : { filter: filter.expression, filterColumns: filter.columns }),
    },
  };
}

function resolveKey(info: TableInfo, config: TableConfig, display: string): ColumnInfo[] {
  const byName = new Map(info.columns.map((c) => [c.name, c]));
  if (config.key === undefined) {
    if (info.primaryKey === null) {
      throw new UserError(
        `table ${display} has no primary key; add one, or set "key" in its config entry to columns that are unique and NOT NULL`,
      );
    }
    return info.primaryKey.map((name) => byName.get(name)!);
  }
  const columns = config.key.map((name) => {
    const column = byName.get(name);
    if (column === undefined) throw new UserError(`table ${display}: "key" names column "${name}", which does not exist`);
    if (!column.notNull) throw new UserError(`table ${display}: key column "${name}" must be NOT NULL; alter it or choose other key columns`);
    return column;
  });
  const wanted = [...config.key].sort().join('\u0000');
  if (!info.uniqueKeys.some((k) => [...k].sort().join('\u0000') === wanted)) {
    throw new UserError(
      `table ${display}: "key" (${config.key.join(', ')}) is not backed by a unique index; create one (CREATE UNIQUE INDEX ... (${config.key.join(', ')}))`,
    );
  }
  return columns;
}

/**
 * Key types whose text output depends on session settings (DateStyle, TimeZone,
 * extra_float_digits...): the capture function pins those settings so the journal holds
 * the same text the daemon prints.
 */
export function keyNeedsCanonicalSettings(column: ColumnInfo): boolean {
  const FLOAT4 = 700;
  const FLOAT8 = 701;
  const MONEY = 790;
  return ['D', 'T', 'A', 'C'].includes(column.category) || [FLOAT4, FLOAT8, MONEY].includes(column.typeOid);
}
