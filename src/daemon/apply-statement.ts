import type pg from 'pg';
import { quoteIdent, quoteLiteral } from '../sql/quote.js';
import { DEFAULT_GROUP } from '../config/load.js';
import type { KeyWrite } from '../redis/replace.js';
import type { BatchResult, BatchStep, ReadBatch } from './apply-batch.js';
import { jsonExpression, type TablePlan } from './table-plan.js';
import { framedHashSql, framedHashWrite } from './framed-hash.js';
import { callsSql, framedCall, keyArgsSql } from './framed-call.js';
import { keyCommandsSql, parseLayout, ttlCommandsPerKey } from './framed-commands.js';
import { MAX_BYTES_PER_CALL } from '../redis/replace.js';
import type { CommandBlock } from '../redis/fenced-block.js';

/**
 * The daemon's whole PostgreSQL side of a batch in one statement: claim the oldest journal
 * rows (DELETE ... RETURNING), fold them into distinct keys per table (dropping keys an
 * in-batch TRUNCATE wiped), and read each key's current row, already framed as the Redis
 * protocol arguments of its hash. Keys never travel to the daemon and back, and the daemon
 * handles one text per row instead of one per column: the daemon's CPU was the bottleneck.
 *
 * Result rows, by `kind`:
 * - 'c': the claim: k1 = journal rows claimed, n = keys claimed, value = oldest created_at,
 *   last = the highest id claimed.
 * - 't': a TRUNCATE of `rel` in this batch (its keys are wiped before the batch's are written).
 * - 'u': `rel` is not in this statement's tables (installed since it was built).
 * - 'r': one key of `rel`: k1..kW its key texts, found, n = fields, value = the framed fields
 *   (hash format) or the JSON document.
 * - 'a': instead of 'r' rows, with writes 'calls': one script call's worth of keys of `rel`
 *   (see framed-call.ts): k1 = the framed keys, n = how many, value = the framed arguments,
 *   last = how many arguments.
 * - 'p': instead of 'r' rows, with writes 'commands': one transaction's worth of keys of `rel`
 *   as plain commands (see framed-commands.ts): n = how many keys, value = the commands, last
 *   = their layout. Tables with change events (stream, publish) have 'a'
 *   rows instead: their script writes each event beside its key.
 *
 * The claimed rows are deleted by their ctid, found in the same statement (a TID scan, whatever
 * the planner thinks of the journal's size); journal rows are never updated, so a ctid cannot
 * name another row meanwhile.
 *
 * $1 is the lowest journal id to look at. Deleted journal rows stay in the id index until
 * vacuum, and every claim from the start of the index walks past them: under steady load that
 * was most of the claim's cost, and over a long backlog it grows with every batch. The daemon
 * passes the id after its last claim, and 0 (a full scan) now and then and before going idle,
 * for rows whose transactions took an id earlier but committed later.
 */
export interface ApplyStatement {
  name: string;
  text: string;
  /** Widest key among the tables (columns k1..kW). */
  keyWidth: number;
  utf8Server: boolean;
  writes: WriteForm;
}

/**
 * What the statement returns for each key: its row ('r', for a Redis Cluster, where the daemon
 * works out each key's hash slot), script calls ('a'), or commands for MULTI ... EXEC ('p').
 */
export type WriteForm = 'rows' | 'calls' | 'commands';

/** Keys per MULTI ... EXEC: Redis serves no other client while it runs one (~3 µs per key). */
export const MAX_KEYS_PER_BLOCK = 1000;

/**
 * Most keys the capture functions put in one journal row (sql/table.sql chunks bigger
 * statements): a claim that found fewer than the batch size minus this had the journal's
 * every visible row, since the next one would have fitted.
 */
export const MAX_KEYS_PER_JOURNAL_ROW = 1000;

/**
 * Journal rows of one daemon group: the default group takes every row but those of tables in
 * named groups (so rows of uninstalled tables are still claimed and dropped).
 */
export function groupFilter(toolSchema: string, group: string): string {
  const registry = `${quoteIdent(toolSchema)}.tables`;
  return group === DEFAULT_GROUP
    ? `rel NOT IN (SELECT g.rel::oid FROM ${registry} g WHERE g.spec ? 'group')`
    : `rel IN (SELECT g.rel::oid FROM ${registry} g WHERE g.spec->>'group' = ${quoteLiteral(group)})`;
}

export interface ApplyStatementOptions {
  toolSchema: string;
  plans: readonly TablePlan[];
  /** Most keys per batch. */
  maxKeys: number;
  /** Names the prepared statement: one per registry generation. */
  generation: number;
  utf8Server: boolean;
  group?: string;
  /** 'rows' unless given. */
  writes?: WriteForm;
}

export function buildApplyStatement(options: ApplyStatementOptions): ApplyStatement {
  const { toolSchema, plans, maxKeys, generation, utf8Server } = options;
  const group = options.group ?? DEFAULT_GROUP;
  const writes = options.writes ?? 'rows';
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new Error(`batch size must be a positive integer, not ${maxKeys}`);
  const journal = `${quoteIdent(toolSchema)}.journal`;
  const keyWidth = Math.max(1, ...plans.map((p) => p.keyColumns.length));
  const keyCols = Array.from({ length: keyWidth }, (_, i) => `k${i + 1}`);
  const nullKeys = keyCols.map(() => 'NULL::text');
  // A single-column key is a 1-D array of texts; a composite one a 2-D array, one row per key.
  const keyParts =
    keyWidth === 1
      ? `k.k1 FROM c CROSS JOIN LATERAL unnest(c.keys) AS k(k1)`
      : `${keyCols.map((k, i) => (i === 0 ? `CASE WHEN array_ndims(c.keys) = 1 THEN c.keys[s] ELSE c.keys[s][1] END AS k1` : `c.keys[s][${i + 1}] AS ${k}`)).join(', ')} ` +
        `FROM c CROSS JOIN LATERAL generate_subscripts(c.keys, 1) AS s`;
  const oids = plans.map((p) => String(p.oid));
  const parts = [
    `SELECT 'c'::text AS kind, NULL::oid AS rel, count(*)::text, ${nullKeys.slice(1).join(', ')}${keyWidth > 1 ? ', ' : ''}NULL::bool, ` +
      `coalesce(sum(coalesce(array_length(c.keys, 1), 1)), 0)::int, min(c.created_at)::text, max(c.id)::text FROM c`,
    `SELECT 't', t.rel, ${nullKeys.join(', ')}, NULL::bool, NULL::int, NULL::text, NULL::text FROM t`,
    `SELECT 'u', u.rel, ${nullKeys.join(', ')}, NULL::bool, NULL::int, NULL::text, NULL::text FROM (SELECT DISTINCT c.rel FROM c${oids.length > 0 ? ` WHERE c.rel NOT IN (${oids.join(', ')})` : ''}) u`,
    ...plans.map((plan) => {
      if (writes === 'rows') return tableBranch(plan, keyWidth, utf8Server);
      return writes === 'commands' && plan.events === null ? commandsBranch(plan, keyWidth, utf8Server) : callsBranch(plan, keyWidth, utf8Server);
    }),
  ];
  const text = `WITH c AS (
  DELETE FROM ${journal}
  WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM (
      SELECT ctid, n, sum(n) OVER (ORDER BY id) AS upto
      FROM (SELECT ctid, id, coalesce(array_length(keys, 1), 1) AS n FROM ${journal} WHERE id >= $1 AND ${groupFilter(toolSchema, group)} ORDER BY id LIMIT ${maxKeys}) j
    ) s
    WHERE upto <= ${maxKeys} OR upto = n
  ))
  RETURNING id, rel, op, keys, created_at
),
t AS (SELECT c.rel, max(c.id) AS id FROM c WHERE c.op = 't' GROUP BY c.rel),
k AS (
  SELECT DISTINCT c.rel, ${keyParts}
  WHERE c.op = 'k' AND NOT EXISTS (SELECT FROM t WHERE t.rel = c.rel AND t.id > c.id)
)
${parts.join('\nUNION ALL\n')}`;
  return { name: `prm_apply_${generation}`, text, keyWidth, utf8Server, writes };
}

/** A batch's key texts of one table, canonical (as its type prints them), and the join to its rows. */
function keyJoin(plan: TablePlan): { keys: string[]; join: string } {
  return {
    keys: plan.keyColumns.map((c, i) => `k.k${i + 1}::${c.type}::text`),
    join: plan.keyColumns.map((c, i) => `t.${quoteIdent(c.name)} = k.k${i + 1}::${c.type}`).join(' AND '),
  };
}

/** The 'r' rows of one table: its keys in this batch, each with its row as it is now. */
function tableBranch(plan: TablePlan, keyWidth: number, utf8Server: boolean): string {
  const { keys, join } = keyJoin(plan);
  for (let i = keys.length; i < keyWidth; i++) keys.push('NULL::text');
  const found = `t.${quoteIdent(plan.keyColumns[0]!.name)} IS NOT NULL`;
  const from = `FROM (SELECT * FROM k WHERE k.rel = ${plan.oid}) k LEFT JOIN ${plan.source} ON ${join}`;
  if (plan.format === 'json') {
    return `SELECT 'r', ${plan.oid}::oid, ${keys.join(', ')}, ${found}, NULL::int, ${jsonExpression(plan.columns)}, NULL::text ${from}`;
  }
  const hash = framedHashSql(plan.columns, utf8Server, plan.columnTypeOids);
  const keyNames = keys.map((_, i) => `k${i + 1}`);
  return (
    `SELECT 'r', ${plan.oid}::oid, ${keyNames.map((k) => `v.${k}`).join(', ')}, v.found, ${hash.count}, ${hash.framed}, NULL::text ` +
    `FROM (SELECT ${keys.map((k, i) => `${k} AS ${keyNames[i]}`).join(', ')}, ${found} AS found, ${hash.values} ${from} OFFSET 0) v`
  );
}

/** The 'a' rows of one table: its keys in this batch, as script calls (k1 = key text, n = keys, value = argument text, last = arguments). */
function callsBranch(plan: TablePlan, keyWidth: number, utf8Server: boolean): string {
  const { keys, join } = keyJoin(plan);
  const perKey = keyArgsSql(plan, keys, utf8Server);
  const keyRows = `SELECT ${perKey.outer} FROM (SELECT ${perKey.inner} FROM (SELECT * FROM k WHERE k.rel = ${plan.oid}) k LEFT JOIN ${plan.source} ON ${join} OFFSET 0) v`;
  const unused = Array.from({ length: keyWidth - 1 }, () => 'NULL::text');
  return `SELECT 'a', ${plan.oid}::oid, c.key_text, ${unused.map((u) => `${u}, `).join('')}NULL::bool, c.keys, c.arg_text, c.args::text FROM (${callsSql(keyRows)}) c`;
}

/**
 * The 'p' rows of one table: its keys in this batch as plain commands, in blocks of at most
 * MAX_KEYS_PER_BLOCK keys and MAX_BYTES_PER_CALL bytes (n = keys, value = commands, last =
 * layout). The aggregates of a block read its rows in one order, so the commands and the
 * layout line up.
 *
 * Keys are numbered before their rows are read, and grouped by that number and by a size
 * class of their commands (see blockClassSql): a running count and byte sum over the framed
 * rows made PostgreSQL store every row's commands once more, a tenth of the claim's CPU.
 */
function commandsBranch(plan: TablePlan, keyWidth: number, utf8Server: boolean): string {
  const { keys, join } = keyJoin(plan);
  const key = keyCommandsSql(plan, keys, utf8Server, plan.ttl);
  const numberedKeys = `SELECT k.*, pg_catalog.row_number() OVER () AS rn FROM k WHERE k.rel = ${plan.oid}`;
  const keyRows = `SELECT k.rn, ${key.inner} FROM (${numberedKeys}) k LEFT JOIN ${plan.source} ON ${join}`;
  // OFFSET 0 keeps each level whole, so each value is framed once (see framed-call.ts).
  const commands = `SELECT x.rn, ${key.commands} AS cmd, ${key.entry} AS e FROM (SELECT v.rn, ${key.mid} FROM (${keyRows} OFFSET 0) v OFFSET 0) x`;
  const sized = `SELECT y.rn, y.cmd, y.e, ${blockClassSql('pg_catalog.octet_length(y.cmd)')} AS b FROM (${commands} OFFSET 0) y`;
  const blocks =
    `SELECT count(*)::int AS keys, pg_catalog.string_agg(z.cmd, '') AS text, pg_catalog.string_agg(z.e, ',') AS layout ` +
    `FROM (${sized}) z GROUP BY z.b, (z.rn - 1) / ${blockKeysSql('z.b')}`;
  const unused = Array.from({ length: keyWidth - 1 }, () => 'NULL::text');
  return `SELECT 'p', ${plan.oid}::oid, NULL::text, ${unused.map((u) => `${u}, `).join('')}NULL::bool, b.keys, b.text, b.layout FROM (${blocks}) b`;
}

/**
 * Size classes of a key's commands, for blocks of at most MAX_BYTES_PER_CALL bytes without a
 * running byte sum: class 0 is up to MAX_BYTES_PER_CALL / MAX_KEYS_PER_BLOCK bytes (so a full
 * block of them fits), class i > 0 below the i-th power of two past that. A block holds keys
 * of one class, no more than fit whole at its upper bound, so it is never over the limit, and
 * a key bigger than the limit is a block of its own. Bigger keys cost a few more blocks, at
 * most one partly filled per class.
 */
const SMALL_KEY_BYTES = Math.floor(MAX_BYTES_PER_CALL / MAX_KEYS_PER_BLOCK);
const CLASS_BOUNDS: number[] = [SMALL_KEY_BYTES + 1];
for (let bound = 2 ** (Math.floor(Math.log2(SMALL_KEY_BYTES + 1)) + 1); bound <= MAX_BYTES_PER_CALL; bound *= 2) CLASS_BOUNDS.push(bound);

/** Keys per block of class i: class i > 0 holds keys below CLASS_BOUNDS[i]; one key past the last bound. */
const BLOCK_KEYS = CLASS_BOUNDS.map((upper, i) => (i === 0 ? MAX_KEYS_PER_BLOCK : Math.max(1, Math.floor(MAX_BYTES_PER_CALL / upper))));

/** The class of a key whose commands are `bytes` long (width_bucket: how many bounds are <= it). */
function blockClassSql(bytes: string): string {
  return `CASE WHEN ${bytes} < ${CLASS_BOUNDS[0]} THEN 0 ELSE pg_catalog.width_bucket(${bytes}, '{${CLASS_BOUNDS.join(',')}}'::pg_catalog.int4[]) END`;
}

/** Keys per block of class `b`. */
function blockKeysSql(b: string): string {
  return `CASE ${b} ${BLOCK_KEYS.map((keys, i) => `WHEN ${i} THEN ${keys}`).join(' ')} ELSE 1 END`;
}

export interface AppliedBatch extends ReadBatch {
  /** Keys claimed (before folding duplicates); 0 when the journal was empty. */
  claimedKeys: number;
  /** created_at of the oldest claimed journal row. */
  oldest: string | null;
  /** Tables with journal rows that the statement does not know. */
  unknown: number[];
  /** The highest journal id claimed. */
  lastId: bigint | null;
}

/** Per connection, the statements PREPAREd on it (a session keeps them, whatever its transactions do). */
const prepared = new WeakMap<pg.ClientBase, Set<string>>();

/**
 * Runs the statement in the caller's transaction and turns its rows into per-table steps.
 * `before` (statements, each ending in `; `) runs first, in the same round trip: the statement
 * is a SQL-level prepared statement run by EXECUTE in a simple query, which can follow BEGIN
 * in one message, where the extended protocol needs a round trip per statement. A connection
 * sees PREPARE in the same message the first time.
 */
export async function claimAndRead(client: pg.ClientBase, statement: ApplyStatement, plans: ReadonlyMap<number, TablePlan>, fromId: bigint, before = ''): Promise<AppliedBatch> {
  let names = prepared.get(client);
  if (names === undefined) {
    names = new Set();
    prepared.set(client, names);
  }
  const name = quoteIdent(statement.name);
  const prepare = names.has(statement.name) ? '' : `PREPARE ${name} (pg_catalog.int8) AS ${statement.text}; `;
  // fromId is a bigint of ours, printed as digits.
  const results = (await client.query<(string | null)[]>({ text: `${prepare}${before}EXECUTE ${name}(${fromId.toString()})`, rowMode: 'array' })) as
    | pg.QueryResult<(string | null)[]>
    | pg.QueryResult<(string | null)[]>[];
  names.add(statement.name);
  const { rows } = Array.isArray(results) ? results[results.length - 1]! : results;
  const width = statement.keyWidth;
  const result: BatchResult = { entries: 0, keys: 0, truncates: 0, skipped: 0, tables: perTable(), durationMs: 0 };
  const batch: AppliedBatch = { result, steps: [], claimedKeys: 0, oldest: null, unknown: [], lastId: null };
  const steps = new Map<number, BatchStep>();
  const stepOf = (plan: TablePlan) => {
    let step = steps.get(plan.oid);
    if (step === undefined) {
      step = { truncatePattern: undefined, writes: [], calls: [], blocks: [], plan };
      steps.set(plan.oid, step);
    }
    return step;
  };
  for (const row of rows) {
    const kind = row[0];
    if (kind === 'r') {
      const plan = plans.get(Number(row[1]))!;
      stepOf(plan).writes.push(rowWrite(plan, row, statement));
      result.keys += 1;
      result.tables[plan.display] = (result.tables[plan.display] ?? 0) + 1;
    } else if (kind === 'a') {
      const plan = plans.get(Number(row[1]))!;
      const keys = Number(row[3 + width]);
      stepOf(plan).calls.push(framedCall(plan.display, keys, row[2]!, Number(row[5 + width]), row[4 + width]!, statement.utf8Server));
      result.keys += keys;
      result.tables[plan.display] = (result.tables[plan.display] ?? 0) + keys;
    } else if (kind === 'p') {
      const plan = plans.get(Number(row[1]))!;
      const keys = Number(row[3 + width]);
      stepOf(plan).blocks.push(commandBlock(plan, keys, row[4 + width]!, row[5 + width]!, statement.utf8Server));
      result.keys += keys;
      result.tables[plan.display] = (result.tables[plan.display] ?? 0) + keys;
    } else if (kind === 't') {
      const plan = plans.get(Number(row[1]));
      if (plan === undefined) continue;
      stepOf(plan).truncatePattern = plan.layout.pattern;
      result.truncates += 1;
    } else if (kind === 'u') {
      batch.unknown.push(Number(row[1]));
    } else {
      result.entries = Number(row[2]);
      batch.claimedKeys = Number(row[width + 3]);
      batch.oldest = row[width + 4] ?? null;
      batch.lastId = row[width + 5] === null ? null : BigInt(row[width + 5]!);
    }
  }
  batch.steps = [...steps.values()];
  return batch;
}

/** No prototype: a table may well be named "__proto__". */
function perTable(): Record<string, number> {
  return Object.create(null) as Record<string, number>;
}

function rowWrite(plan: TablePlan, row: readonly (string | null)[], statement: ApplyStatement): KeyWrite {
  const width = statement.keyWidth;
  const key = plan.layout.build(row.slice(2, 2 + plan.keyColumns.length) as string[]);
  if (row[2 + width] !== 't') return { key, delete: true };
  const value = row[4 + width]!;
  if (plan.format === 'json') return { key, json: value };
  return framedHashWrite(key, Number(row[3 + width]), value, statement.utf8Server, plan.display);
}

/** A block read from PostgreSQL, checked as framedCall checks a call. */
function commandBlock(plan: TablePlan, keys: number, text: string, layout: string, utf8Server: boolean): CommandBlock {
  if (!utf8Server && text.includes('\uFFFD')) {
    throw new Error(`a row of ${plan.display} holds text that is not valid UTF-8; it cannot be mirrored`);
  }
  return { text, layout: parseLayout(layout, keys, ttlCommandsPerKey(plan.format, plan.ttl)) };
}
