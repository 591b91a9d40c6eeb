import { sql } from 'kysely';
import type { Db } from '../db/kysely.js';
import { CANONICAL_SETTINGS } from '../db/connect.js';
import { UserError } from '../errors.js';
import { quoteQualified } from '../sql/quote.js';
import type { TableName } from '../config/table-name.js';

/** A row filter as PostgreSQL understood it. */
export interface CheckedFilter {
  /**
   * The expression as PostgreSQL prints it back (pg_get_expr of the parsed tree): exactly one
   * expression whatever the input looked like, with every function, operator and type outside
   * pg_catalog schema-qualified and every constant in canonical settings, so it means the same
   * in the daemon's session as in the install's. This, not the config text, is what runs.
   */
  expression: string;
  /** Columns it reads: the daemon needs SELECT on them even when they are not mirrored. */
  columns: string[];
}

const CHECK_TABLE = 'prm_filter_check';
const FILTER_HELP = "a filter must be one boolean SQL expression over the table's own columns, named without the table name (only IMMUTABLE functions, no subqueries)";

/**
 * Asks PostgreSQL itself whether `filter` is a valid row filter of `table`, and how it reads
 * it. The expression becomes the predicate of a partial index on an empty temporary copy of
 * the table's columns, because PostgreSQL then enforces exactly what a filter needs:
 *
 * - one expression (an index predicate is a single `a_expr`: anything after it is a syntax
 *   error), of type boolean;
 * - only the table's columns (no other table is in scope; system columns are refused);
 * - no subquery, aggregate, window or set-returning function, and only IMMUTABLE functions:
 *   whether a row matches must depend on the row alone. A filter reading another table or the
 *   clock (`now()`) could change its answer without any change to the row, and no trigger
 *   would tell the daemon.
 *
 * Before that, the same text is parsed inside a SELECT with a bound parameter. That goes
 * through the extended protocol, which refuses a string of more than one statement, so a
 * `;` outside a literal (`1=1; DROP TABLE x`) fails at parse time, before anything runs;
 * CREATE INDEX, a utility statement, cannot take a parameter and would be sent as a simple
 * query. The lexer splits the text the same way in both places, so the index statement is
 * then one statement too.
 *
 * Everything happens under a savepoint that is always rolled back (the temporary table, its
 * index, the settings), inside the caller's transaction or a transaction of its own.
 */
export async function checkFilter(db: Db, table: TableName, filter: string, display: string): Promise<CheckedFilter> {
  if (!db.isTransaction) return db.transaction().execute((trx) => checkFilter(trx, table, filter, display));
  await sql.raw('SAVEPOINT prm_filter_check').execute(db);
  try {
    return await checkInSavepoint(db, table, filter, display);
  } finally {
    // Also recovers the transaction after a failed check, so the caller's error is ours.
    await sql.raw('ROLLBACK TO SAVEPOINT prm_filter_check').execute(db);
    await sql.raw('RELEASE SAVEPOINT prm_filter_check').execute(db);
  }
}

async function checkInSavepoint(db: Db, table: TableName, filter: string, display: string): Promise<CheckedFilter> {
  // Literals are read as the daemon's sessions read them (install sets this too).
  await sql`SELECT pg_catalog.set_config('standard_conforming_strings', 'on', true)`.execute(db);
  // LIKE copies names, types, collations and NOT NULL; generated columns become plain ones,
  // which a filter may read (they are computed before the capture triggers fire).
  await sql.raw(`CREATE TEMPORARY TABLE ${CHECK_TABLE} (LIKE ${quoteQualified(table.schema, table.name)})`).execute(db);
  const target = `pg_temp.${CHECK_TABLE}`;
  // The newline before ")" lets a filter end with a "--" comment.
  const end = '\n)';
  const select = `SELECT $1::int FROM ${target} WHERE (`;
  await reported(display, filter, select, () => sql`SELECT ${1}::int FROM ${sql.raw(`${target} WHERE (${filter}${end} LIMIT 0`)}`.execute(db));
  // Indexed on a constant, so the index's column dependencies are exactly the filter's columns.
  const index = `CREATE INDEX ${CHECK_TABLE}_idx ON ${target} ((1)) WHERE (`;
  await reported(display, filter, index, () => sql.raw(`${index}${filter}${end}`).execute(db));
  // Printed with only pg_catalog visible (so everything else comes out schema-qualified) and
  // in the daemon's date, time and number settings.
  await sql`SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)`.execute(db);
  for (const [name, value] of CANONICAL_SETTINGS) await sql`SELECT pg_catalog.set_config(${name}, ${value}, true)`.execute(db);
  // (Every value arrives as text: booleans as t/f, arrays as JSON.)
  const result = await sql<{ expression: string; whole_row: string; columns: string | null }>`
    SELECT pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS expression,
           i.indpred::text LIKE '%:varattno 0 %' AS whole_row,
           (SELECT pg_catalog.to_json(pg_catalog.array_agg(a.attname::text ORDER BY a.attnum))::text
            FROM pg_catalog.pg_depend d
            JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
            WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
              AND d.refobjid = i.indrelid AND d.refobjsubid > 0) AS columns
    FROM pg_catalog.pg_index i
    WHERE i.indrelid = ${target}::regclass`.execute(db);
  const row = result.rows[0];
  if (result.rows.length !== 1 || row === undefined) throw new Error(`checking the filter of ${display} created ${result.rows.length} indexes`);
  if (row.whole_row === 't') throw new UserError(`table ${display}: "filter" ${JSON.stringify(filter)} refers to the whole row; ${FILTER_HELP}`);
  return { expression: row.expression, columns: row.columns === null ? [] : (JSON.parse(row.columns) as string[]) };
}

/** Runs a query whose text is `head` + the filter + more, turning PostgreSQL's refusal into one line about the filter. */
async function reported<T>(display: string, filter: string, head: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // SQLSTATE classes 42 (syntax or access rule), 0A (not supported), 22 (data), 2F/38/39
    // (a function's own error): the filter's fault. Anything else (connection lost...) is not.
    if (typeof code !== 'string' || !/^(42|0A|22|2F|38|39)/.test(code)) throw error;
    throw new UserError(`table ${display}: "filter" ${JSON.stringify(filter)} is not valid: ${explain(error as Error, head, filter)}; ${FILTER_HELP}`, { cause: error });
  }
}

/** PostgreSQL's message, reworded where it speaks of the index the check is made with. */
function explain(error: Error, head: string, filter: string): string {
  const message = error.message.split('\n')[0]!;
  const moreThanOne = 'it holds more than one statement (a ";" outside a quoted literal)';
  if (/cannot insert multiple commands into a prepared statement/.test(message)) return moreThanOne;
  // PostgreSQL points at the error by character, counting from 1: in the filter, or past its
  // end (in the text the check added around it).
  const position = Number((error as { position?: unknown }).position) - 1 - Array.from(head).length;
  const chars = Array.from(filter);
  if (/^syntax error/.test(message) && Number.isInteger(position)) {
    // A ";" usually cuts the statement short before the extended protocol can object.
    if (chars[position] === ';') return moreThanOne;
    if (position >= chars.length) return 'it is incomplete (syntax error at its end)';
  }
  // "at or near" would quote the text the check added after the filter.
  const unterminated = /^(unterminated [a-z/-]+(?: [a-z-]+)*?) at or near/.exec(message);
  if (unterminated !== null) return unterminated[1]!;
  const notBoolean = /^argument of WHERE must be type boolean, not type (.+)$/.exec(message);
  if (notBoolean !== null) return `it is of type ${notBoolean[1]}, not boolean`;
  if (/system columns/.test(message)) return 'system columns (ctid, xmin...) cannot be used';
  return message
    .replace(/index predicates?/g, 'a filter')
    .replace(/ in WHERE$/, ' in a filter')
    .replace(new RegExp(`"?${CHECK_TABLE}"?`, 'g'), 'the table');
}
