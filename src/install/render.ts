import { createHash } from 'node:crypto';
import { formatTableName, type TableName } from '../config/table-name.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../sql/quote.js';
import { renderSqlFile, sqlFileText } from '../sql/template.js';
import { SCHEMA_VERSION } from '../version.js';
import { captureFunctionName, installLockKey, triggerNames, truncateStartTriggerName, wakeLockKey } from './names.js';
import { keyNeedsCanonicalSettings, type TableSpec } from './spec.js';
import type { InstalledTable } from './state.js';
import { CANONICAL_SETTINGS } from '../db/connect.js';

/**
 * How long one attempt of install/uninstall waits for a table lock. Short, because while it
 * waits every writer of that table queues behind it; and below PostgreSQL's default
 * deadlock_timeout (1 s), so that when the tool and an application transaction deadlock, the
 * tool's wait ends first and the application's transaction is never the one cancelled.
 */
export const DEFAULT_LOCK_TIMEOUT_MS = 500;

/** The statements that open every install/uninstall script: serialize runs, pin literal syntax, wait politely. */
export function renderPreamble(toolSchema: string, lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MS): string {
  const [a, b] = installLockKey(toolSchema);
  if (!Number.isSafeInteger(lockTimeoutMs) || lockTimeoutMs < 1) throw new Error(`lock timeout must be a positive integer, not ${lockTimeoutMs}`);
  return [
    `-- one install or uninstall at a time for schema ${quoteIdent(toolSchema)}`,
    `SELECT pg_catalog.pg_advisory_xact_lock(${a}, ${b});`,
    `SET LOCAL standard_conforming_strings = on;`,
    `-- give up on a table lock rather than make the application's writers queue behind this`,
    `-- transaction (install retries; if this script fails here, run it again)`,
    `SET LOCAL lock_timeout = '${lockTimeoutMs}ms';`,
    '',
  ].join('\n');
}

/**
 * Takes every table lock the script needs in one place, first: the statements after it then
 * never wait, so the locks are held for milliseconds, and a table that cannot be locked in
 * time fails the attempt before anything was done. CREATE [OR REPLACE] TRIGGER takes SHARE ROW
 * EXCLUSIVE (writers wait, readers do not); DROP TRIGGER takes ACCESS EXCLUSIVE (readers wait too).
 */
export function renderLocks(triggered: readonly TableName[], dropped: readonly TableName[], reversed = false): string {
  const order = <T>(items: readonly T[]): T[] => (reversed ? [...items].reverse() : [...items]);
  const lock = (tables: readonly TableName[], mode: string): string =>
    tables.length === 0 ? '' : `LOCK TABLE ${order(tables).map((t) => `ONLY ${quoteQualified(t.schema, t.name)}`).join(', ')} IN ${mode} MODE;\n`;
  return order([lock(triggered, 'SHARE ROW EXCLUSIVE'), lock(dropped, 'ACCESS EXCLUSIVE')]).join('');
}

export function renderSchema(toolSchema: string): string {
  return renderSqlFile('schema.sql', {
    schema: quoteIdent(toolSchema),
    journal_literal: quoteLiteral(`${quoteIdent(toolSchema)}.journal`),
    version: SCHEMA_VERSION,
    version_literal: quoteLiteral(SCHEMA_VERSION),
  });
}

export function captureFunction(toolSchema: string, schema: string, table: string): string {
  return `${quoteIdent(toolSchema)}.${quoteIdent(captureFunctionName(schema, table))}`;
}

/** Identifies everything that shapes a table's installed objects: equal hash, nothing to do. */
export function specHash(toolSchema: string, spec: TableSpec): string {
  const shape = {
    version: SCHEMA_VERSION,
    // A changed capture template (a new release) makes every table's install out of date.
    template: sqlFileText('table.sql'),
    partitions: spec.partitioned ? sqlFileText('partitions.sql') : null,
    toolSchema,
    keys: spec.keyColumns.map((c) => [c.name, c.type]),
    stored: spec.stored,
  };
  return createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 16);
}

export function renderTable(toolSchema: string, spec: TableSpec): string {
  const triggers = triggerNames(toolSchema);
  const keys = spec.keyColumns.map((c) => quoteIdent(c.name));
  const composite = keys.length > 1;
  // Qualified: the capture function runs with the caller's search_path (see sql/table.sql).
  const keyText = (ref: string) => `${ref}::pg_catalog.text`;
  const key = composite ? `ARRAY[${keys.map(keyText).join(', ')}]` : keyText(keys[0]!);
  const oldKey = composite ? `ARRAY[${keys.map((k) => keyText(`OLD.${k}`)).join(', ')}]` : keyText(`OLD.${keys[0]!}`);
  const keyChanged = composite
    ? `ROW(${keys.map((k) => `OLD.${k}`).join(', ')}) IS DISTINCT FROM ROW(${keys.map((k) => `NEW.${k}`).join(', ')})`
    : `OLD.${keys[0]!} IS DISTINCT FROM NEW.${keys[0]!}`;
  const partitioned = spec.partitioned ? partitionedParts(toolSchema, spec, key) : PLAIN_PARTS;
  const settings = spec.keyColumns.some(keyNeedsCanonicalSettings)
    ? CANONICAL_SETTINGS.map(([name, value]) => `\nSET ${quoteIdent(name)} = ${quoteLiteral(value)}`).join('')
    : '';
  return renderSqlFile('table.sql', {
    display: formatTableName(spec).replace(/\n/g, ' '),
    schema: quoteIdent(toolSchema),
    function: captureFunction(toolSchema, spec.schema, spec.name),
    table: quoteQualified(spec.schema, spec.name),
    settings,
    key,
    old_key: oldKey,
    key_changed: keyChanged,
    trigger_insert: quoteIdent(triggers.insert),
    trigger_update: quoteIdent(triggers.update),
    trigger_delete: quoteIdent(triggers.delete),
    trigger_truncate: quoteIdent(triggers.truncate),
    trigger_key_change: quoteIdent(triggers.keyChange),
    ...partitioned,
    table_literal: quoteLiteral(quoteQualified(spec.schema, spec.name)),
    schema_name_literal: quoteLiteral(spec.schema),
    table_name_literal: quoteLiteral(spec.name),
    spec_literal: quoteLiteral(JSON.stringify(spec.stored)),
    hash_literal: quoteLiteral(specHash(toolSchema, spec)),
    channel: quoteLiteral(toolSchema),
    wake_lock: wakeLockKey(toolSchema, spec.stored.group).join(', '),
    group_meta: groupMetaRows(toolSchema, spec.stored.group),
  });
}

/** A plain table's capture function journals under TG_RELID; its triggers take no arguments. */
const PLAIN_PARTS = {
  declare_rel: '',
  resolve_rel: '',
  rel: 'TG_RELID',
  partition_truncate: '',
  truncate_done: '',
  truncate_start: '',
  moved_rows: '',
  update_old_rows: '',
  update_args: '',
  key_change_args: '',
  partitions: '',
};

/**
 * A partitioned table's capture function also runs from its partitions' triggers (argument
 * 'partition'), for statements made straight to a partition, and journals under the table.
 * An UPDATE through the table (or through a partitioned partition) may move rows between
 * partitions, which fires no row trigger, so its trigger also reads the old rows ('moves').
 * A partition's TRUNCATE fires no trigger of the table: a BEFORE TRUNCATE trigger on each
 * partition journals the keys of the rows it is about to remove, unless the table's own BEFORE
 * TRUNCATE trigger ('start') said that the whole table goes, which journals one entry.
 */
function partitionedParts(toolSchema: string, spec: TableSpec, key: string): Record<keyof typeof PLAIN_PARTS, string> {
  const triggers = triggerNames(toolSchema);
  const journal = `${quoteIdent(toolSchema)}.journal`;
  const fn = captureFunction(toolSchema, spec.schema, spec.name);
  return {
    declare_rel: '\n  root_rel oid;',
    resolve_rel: `
  IF TG_ARGV[0] OPERATOR(pg_catalog.=) 'partition' THEN
    -- A partition's changes are journaled under the mirrored table it belongs to, whose OID
    -- its triggers carry. When the partition's root is another table (the partition was
    -- detached, or the table attached under another; or the OIDs changed in a restore), the
    -- registry says which mirrored table it belongs to, if any: a detached one journals nothing.
    root_rel := pg_catalog.pg_partition_root(TG_RELID);
    IF root_rel IS NULL OR root_rel::pg_catalog.text OPERATOR(pg_catalog.<>) TG_ARGV[1] THEN
      SELECT a.relid INTO root_rel FROM pg_catalog.pg_partition_ancestors(TG_RELID) a
        JOIN ${quoteIdent(toolSchema)}.tables t ON t.rel OPERATOR(pg_catalog.=) a.relid LIMIT 1;
      IF root_rel IS NULL THEN
        RETURN NULL;
      END IF;
    END IF;
  ELSE
    root_rel := TG_RELID;
  END IF;`,
    rel: 'root_rel',
    partition_truncate: `  ELSIF TG_WHEN OPERATOR(pg_catalog.=) 'BEFORE' THEN
    -- TRUNCATE: of the whole table, which then journals one "whole table" entry (below), or
    -- of partitions, which journal the keys of their rows while these are still there. The
    -- table's BEFORE trigger fires before its partitions' and tells them which it is.
    IF TG_ARGV[0] OPERATOR(pg_catalog.=) 'start' THEN
      PERFORM pg_catalog.set_config('pg_redis_mirror.truncating', root_rel::pg_catalog.text, true);
      RETURN NULL;
    END IF;
    IF pg_catalog.current_setting('pg_redis_mirror.truncating', true) OPERATOR(pg_catalog.=) root_rel::pg_catalog.text THEN
      RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format('INSERT INTO %s (rel, keys) SELECT $1, pg_catalog.array_agg(s.k) FROM (SELECT %s AS k, '
      'pg_catalog.row_number() OVER () AS i FROM ONLY %I.%I) s GROUP BY (s.i OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog./) 1000',
      ${quoteLiteral(journal)}, ${quoteLiteral(key)}, TG_TABLE_SCHEMA, TG_TABLE_NAME) USING root_rel;
    GET DIAGNOSTICS n_keys = ROW_COUNT;
    IF n_keys OPERATOR(pg_catalog.=) 0 THEN
      RETURN NULL;
    END IF;
`,
    truncate_done: `    PERFORM pg_catalog.set_config('pg_redis_mirror.truncating', '', true);
`,
    truncate_start: `CREATE OR REPLACE TRIGGER ${quoteIdent(truncateStartTriggerName(toolSchema))} BEFORE TRUNCATE ON ${quoteQualified(spec.schema, spec.name)}
  FOR EACH STATEMENT EXECUTE FUNCTION ${fn}('start');
`,
    moved_rows: `  ELSIF TG_ARGV[TG_NARGS OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) 'moves' THEN
    -- An UPDATE that moved a row to another partition fired no row trigger: the old keys come
    -- from the old rows. A small statement journals both as they are (the daemon reads each
    -- key once); a big one, the keys of both once, in chunks.
    INSERT INTO ${journal} (rel, keys)
      VALUES (root_rel, ARRAY(SELECT ${key} FROM changed_rows LIMIT 501) OPERATOR(pg_catalog.||) ARRAY(SELECT ${key} FROM old_rows LIMIT 501))
      RETURNING id, pg_catalog.array_length(keys, 1) INTO entry, n_keys;
    IF n_keys IS NULL OR n_keys OPERATOR(pg_catalog.>) 1000 THEN
      DELETE FROM ${journal} WHERE id OPERATOR(pg_catalog.=) entry;
      INSERT INTO ${journal} (rel, keys)
        SELECT root_rel, pg_catalog.array_agg(s.k) FROM (SELECT u.k, pg_catalog.row_number() OVER () AS i
          FROM (SELECT ${key} AS k FROM changed_rows UNION SELECT ${key} FROM old_rows) u) s
        GROUP BY (s.i OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog./) 1000;
      IF NOT FOUND THEN
        RETURN NULL;
      END IF;
    END IF;
`,
    update_old_rows: 'OLD TABLE AS old_rows ',
    update_args: "'moves'",
    key_change_args: `'partition', '${spec.oid}'`,
    partitions: renderSqlFile('partitions.sql', {
      table_literal: quoteLiteral(quoteQualified(spec.schema, spec.name)),
      function_literal: quoteLiteral(fn),
      signature_literal: quoteLiteral(`${fn}()`),
      insert_literal: quoteLiteral(triggers.insert),
      update_literal: quoteLiteral(triggers.update),
      delete_literal: quoteLiteral(triggers.delete),
      truncate_literal: quoteLiteral(triggers.truncate),
    }),
  };
}

export function renderUntable(toolSchema: string, table: InstalledTable): string {
  const triggers = triggerNames(toolSchema);
  const current = table.current;
  const dropTriggers =
    current === null
      ? ''
      : Object.values(triggers)
          .map((t) => `DROP TRIGGER IF EXISTS ${quoteIdent(t)} ON ${quoteQualified(current.schema, current.name)};\n`)
          .join('');
  return renderSqlFile('untable.sql', {
    display: formatTableName(table).replace(/\n/g, ' '),
    drop_triggers: dropTriggers,
    function: captureFunction(toolSchema, table.schema, table.name),
    signature_literal: quoteLiteral(`${captureFunction(toolSchema, table.schema, table.name)}()`),
    schema: quoteIdent(toolSchema),
    oid: String(table.oid),
    schema_name_literal: quoteLiteral(table.schema),
    table_name_literal: quoteLiteral(table.name),
  });
}

export function renderUnschema(toolSchema: string): string {
  return renderSqlFile('unschema.sql', { schema: quoteIdent(toolSchema) });
}

/** Wakes running daemons so they reload the registry. */
export function renderReload(toolSchema: string): string {
  return `SELECT pg_catalog.pg_notify(${quoteLiteral(toolSchema)}, '{"event":"reload"}');\n`;
}

/**
 * The daemon state rows of a table's group (the default group's come with the schema): install
 * creates them so that a group's daemon needs no more than UPDATE on meta.
 */
function groupMetaRows(toolSchema: string, group: string | undefined): string {
  if (group === undefined) return '';
  const rows = [['redis_epoch', ''], ['recopy', 'false'], ['leader_epoch', '0']].map(([key, value]) => `(${quoteLiteral(`${key}:${group}`)}, ${quoteLiteral(value!)})`);
  return `INSERT INTO ${quoteIdent(toolSchema)}.meta (key, value) VALUES ${rows.join(', ')} ON CONFLICT (key) DO NOTHING;`;
}
