/**
 * Names are only ever names: schemas, tables and columns whose names hold quotes, spaces,
 * capitals, unicode, newlines, glob characters, "__proto__" and SQL go through install, sync,
 * the daemon (inserts, updates, deletes, key changes, TRUNCATE) and verify, and Redis ends up
 * holding exactly the rows, one field per column under the column's exact name.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install, uninstall } from '../src/install/install.js';
import { syncTables } from '../src/sync/sync.js';
import { deleteMatching } from '../src/redis/scan.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createScratch, expectMirrorClean, settle, startDaemon, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;

beforeAll(async () => {
  scratch = await createScratch('hostile');
});
afterAll(async () => {
  await scratch.cleanup();
});

const SCHEMA = 'Ünï ☃ "Sch"; DROP TABLE y; --';
const TOOL_SCHEMA = "Tool \"S\" ☃ 'x'; --";
const ONE = { name: 'x"; DROP TABLE y; --', key: 'Key "Col"', cols: ['Key "Col"', 'x"; DROP TABLE y; --', 'Line\nBreak', 'naïve 🙂', '__proto__', '*[glob]?', "it's $1 {id}"] };
const TWO = { name: 'Two.Lines\n"T":*', keys: ['K:1', 'k "2"\n'], cols: ['K:1', 'k "2"\n', 'SELECT 1;', 'constructor'] };

const q = quoteIdent;
const one = `${q(SCHEMA)}.${q(ONE.name)}`;
const two = `${q(SCHEMA)}.${q(TWO.name)}`;

/** The README's key layout, written out independently of src/redis/keys.ts. */
const escName = (s: string): string => s.replace(/[\\:.]/g, (c) => `\\${c}`);
const escValue = (s: string): string => s.replace(/[\\:]/g, (c) => `\\${c}`);
const keyOf = (table: string, ...values: string[]): string => `${scratch.prefix}${escName(SCHEMA)}.${escName(table)}:${values.map(escValue).join(':')}`;

/** Every row of a table as Redis should hold it: key -> { exact column name: text value }, NULLs absent. */
async function expected(tableSql: string, table: string, columns: string[], keyColumns: string[]): Promise<Map<string, Record<string, string>>> {
  // rowMode 'array': a column named __proto__ must not meet an object's prototype.
  const result = await scratch.pool.query<(string | null)[]>({ text: `SELECT ${columns.map((c) => `${q(c)}::text`).join(', ')} FROM ${tableSql}`, rowMode: 'array' });
  const rows = new Map<string, Record<string, string>>();
  for (const row of result.rows) {
    const fields = Object.create(null) as Record<string, string>;
    columns.forEach((c, i) => {
      if (row[i] !== null) fields[c] = row[i]!;
    });
    rows.set(keyOf(table, ...keyColumns.map((k) => row[columns.indexOf(k)]!)), fields);
  }
  return rows;
}

/** What Redis holds under the table's prefix, read back field by field. */
async function actual(table: string): Promise<Map<string, Record<string, string>>> {
  const head = `${scratch.prefix}${escName(SCHEMA)}.${escName(table)}:`;
  const found = new Map<string, Record<string, string>>();
  let cursor = '0';
  do {
    const [next, keys] = await scratch.redis.scan(cursor, 'MATCH', `${head.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const flat = await scratch.redis.call('HGETALL', key) as string[];
      const fields = Object.create(null) as Record<string, string>;
      for (let i = 0; i < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
      found.set(key, fields);
    }
  } while (cursor !== '0');
  return found;
}

async function expectExactHashes(): Promise<void> {
  for (const [tableSql, table, columns, keys] of [
    [one, ONE.name, ONE.cols, [ONE.key]],
    [two, TWO.name, TWO.cols, TWO.keys],
  ] as const) {
    const want = await expected(tableSql, table, [...columns], [...keys]);
    const got = await actual(table);
    expect(new Map([...got].map(([k, v]) => [k, { ...v }])), table).toEqual(new Map([...want].map(([k, v]) => [k, { ...v }])));
  }
}

it('installs, syncs, mirrors and verifies tables whose every name is hostile, with exact hashes', async () => {
  await scratch.pool.query(`CREATE TABLE y (id int PRIMARY KEY)`);
  await scratch.pool.query(`CREATE SCHEMA ${q(SCHEMA)}`);
  await scratch.pool.query(`CREATE TABLE ${one} (${q(ONE.cols[0]!)} text PRIMARY KEY, ${ONE.cols.slice(1).map((c) => `${q(c)} text`).join(', ')})`);
  await scratch.pool.query(`CREATE TABLE ${two} (${q('K:1')} int, ${q('k "2"\n')} text, ${q('SELECT 1;')} text, ${q('constructor')} int, PRIMARY KEY (${q('K:1')}, ${q('k "2"\n')}))`);
  // Rows that exist before install: sync copies them.
  await scratch.pool.query(`INSERT INTO ${one} VALUES ('seed:1', 'a"; --', E'multi\\nline', 'ünï', 'proto', '*', '$$'), (E'back\\\\slash', NULL, NULL, NULL, NULL, NULL, NULL)`);
  await scratch.pool.query(`INSERT INTO ${two} VALUES (1, 'a:b', 'DROP TABLE y;', 7), (2, E'new\\nline', NULL, NULL)`);

  const config = scratch.config([], { schema: TOOL_SCHEMA });
  config.tables = [
    { schema: SCHEMA, name: ONE.name, format: 'hash', prefix: scratch.prefix },
    { schema: SCHEMA, name: TWO.name, format: 'hash', prefix: scratch.prefix },
  ];
  const installed = await install(config, scratch.pool);
  expect(installed.tables.map((t) => t.action)).toEqual(['create', 'create']);
  expect((await install(config, scratch.pool)).tables.map((t) => t.action)).toEqual(['unchanged', 'unchanged']);
  const copied = await syncTables(scratch.pool, scratch.redis, { schema: TOOL_SCHEMA });
  expect(copied.map((c) => c.rows)).toEqual([2, 2]);
  await expectExactHashes();
  expect(await scratch.redis.hgetall(keyOf(ONE.name, 'seed:1'))).toEqual({
    'Key "Col"': 'seed:1',
    'x"; DROP TABLE y; --': 'a"; --',
    'Line\nBreak': 'multi\nline',
    'naïve 🙂': 'ünï',
    '*[glob]?': '*',
    "it's $1 {id}": '$$',
    ['__proto__']: 'proto',
  });

  let daemon: MirrorDaemon | undefined = await startDaemon(config);
  try {
    await scratch.pool.query(`INSERT INTO ${one} SELECT 'k:' || g, 'v' || g, NULL, 'é' || g, NULL, '?', NULL FROM generate_series(1, 20) g`);
    await scratch.pool.query(`UPDATE ${one} SET ${q('x"; DROP TABLE y; --')} = NULL, ${q('Line\nBreak')} = E'a\\r\\nb' WHERE ${q(ONE.key)} = 'k:3'`);
    await scratch.pool.query(`UPDATE ${one} SET ${q(ONE.key)} = ${q(ONE.key)} || ':moved' WHERE ${q(ONE.key)} IN ('k:4', 'seed:1')`);
    await scratch.pool.query(`DELETE FROM ${one} WHERE ${q(ONE.key)} IN ('k:5', E'back\\\\slash')`);
    await scratch.pool.query(`INSERT INTO ${two} SELECT g, 'p:' || g, 'SELECT ' || g || ';', g FROM generate_series(3, 12) g`);
    await scratch.pool.query(`UPDATE ${two} SET ${q('k "2"\n')} = ${q('k "2"\n')} || E'\\n2' WHERE ${q('K:1')} IN (1, 3)`);
    await scratch.pool.query(`UPDATE ${two} SET ${q('K:1')} = -${q('K:1')} WHERE ${q('K:1')} = 4`);
    await scratch.pool.query(`DELETE FROM ${two} WHERE ${q('K:1')} = 5`);
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
    await expectExactHashes();
    expect(await scratch.redis.exists(keyOf(ONE.name, 'k:4'), keyOf(ONE.name, 'k:5'), keyOf(TWO.name, '4', 'p:4'), keyOf(TWO.name, '1', 'a:b'))).toBe(0);
    expect(await scratch.redis.hgetall(keyOf(TWO.name, '1', 'a:b\n2'))).toEqual({ 'K:1': '1', 'k "2"\n': 'a:b\n2', 'SELECT 1;': 'DROP TABLE y;', constructor: '7' });

    // TRUNCATE removes the table's keys (a glob-laden name must not match the other table), then new rows arrive.
    await scratch.pool.query(`TRUNCATE ${two}`);
    await scratch.pool.query(`INSERT INTO ${two} VALUES (99, '*', NULL, NULL)`);
    await settle(scratch, config);
    expect((await actual(ONE.name)).size).toBe(20);
    await expectExactHashes();

    // A copy over rows the daemon already wrote changes nothing.
    await deleteMatching(scratch.redis, `${keyOf(ONE.name, 'k:1').replace(/[*?[\]\\]/g, (c) => `\\${c}`)}`);
    await syncTables(scratch.pool, scratch.redis, { schema: TOOL_SCHEMA });
    await settle(scratch, config);
    await expectMirrorClean(scratch, config);
    await expectExactHashes();
  } finally {
    await daemon?.stop();
    daemon = undefined;
  }
  await uninstall(config, scratch.pool);
  const left = await scratch.pool.query(`SELECT count(*) AS n FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND NOT t.tgisinternal`, [SCHEMA]);
  expect(left.rows[0].n).toBe('0');
  expect((await scratch.pool.query(`SELECT to_regclass('public.y') IS NOT NULL AS ok`)).rows[0].ok).toBe('t');
});
