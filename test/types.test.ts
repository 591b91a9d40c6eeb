import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { Config, TableConfig } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { clientConfig } from '../src/db/connect.js';
import { createScratch, expectMirrorClean, installAndStart, settle, type Scratch } from './helpers/scratch.js';

/**
 * Exact Redis values for many PostgreSQL types, in both formats. Every expected value below
 * is a literal written from PostgreSQL's documented output (text output for hash fields,
 * to_jsonb rendering for json), never computed by the code under test.
 */

let scratch: Scratch;
let daemons: MirrorDaemon[] = [];
let oddClients: pg.Client[] = [];
let counter = 0;

beforeAll(async () => {
  scratch = await createScratch('types');
});
afterEach(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  daemons = [];
  await Promise.all(oddClients.map((c) => c.end().catch(() => undefined)));
  oddClients = [];
});
afterAll(async () => {
  await scratch.cleanup();
});

/** Creates the tables, installs them under a tool schema of this test's own, starts a daemon. */
async function mirror(ddl: string, tables: (string | (Partial<TableConfig> & { table: string }))[]): Promise<Config> {
  await scratch.pool.query(ddl);
  const config = scratch.config(tables, { schema: `types_${++counter}` });
  daemons.push(await installAndStart(scratch, config));
  return config;
}

/** `rest` is the already-escaped key part after `<prefix><schema>.<table>:`. */
const key = (table: string, rest: string): string => `${scratch.prefix}${table}:${rest}`;

/**
 * A session whose settings make date/time output differ from the canonical one: the trigger
 * must pin its own settings for key columns of such types.
 */
async function oddSession(): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(scratch.databaseUrl, 'types-odd-session'));
  await client.connect();
  oddClients.push(client);
  await client.query(`SET TimeZone = 'America/New_York'`);
  await client.query(`SET DateStyle = 'SQL, DMY'`);
  // The session really prints differently (else the tests below would prove nothing).
  const probe = await client.query<{ tz: string; d: string }>(
    `SELECT '2024-03-01 10:34:56+00'::timestamptz::text AS tz, '2024-02-01'::date::text AS d`,
  );
  expect(probe.rows[0]).toEqual({ tz: '01/03/2024 05:34:56 EST', d: '01/02/2024' });
  return client;
}

const ALL_TYPES_DDL = (name: string): string => `
  CREATE TABLE ${name} (
    id int PRIMARY KEY,
    i int,
    big bigint,
    num numeric,
    txt text,
    b bool,
    tstz timestamptz,
    ts timestamp,
    d date,
    u uuid,
    j jsonb,
    ia int[],
    ta text[],
    bin bytea
  );`;

const INSERT_COLUMNS = '(id, i, big, num, txt, b, tstz, ts, d, u, j, ia, ta, bin)';
const INSERT_PARAMS = 'VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)';

/** Unicode (emoji, accents), both quotes, a backslash, a newline and a tab. */
const TEXT = 'a\'b"c\\d\ne\tf😀é Zoë naïve';

/** Row 1: every column set; inputs in forms PostgreSQL must normalise (offset, upper-case uuid/hex). */
const ROW_FULL = [
  '1',
  '42',
  '9007199254740993',
  '12345678901234567890.123456789000',
  TEXT,
  'true',
  '2024-03-01 12:34:56.789+02',
  '2024-03-01 12:34:56.789',
  '2024-02-01',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
  '{"k": "v", "a": [1, 2.50, null]}',
  '{1,NULL,3}',
  String.raw`{a,"b,c","d\"e","f\\g",NULL,""}`,
  String.raw`\xDEADbeef`,
];
/** Row 2: every column but the key NULL. */
const ROW_NULLS = ['2', null, null, null, null, null, null, null, null, null, null, null, null, null];
/** Row 3: edge values: extremes, empty text/arrays/bytea, JSON null, infinities. */
const ROW_EDGE = [
  '3',
  '-2147483648',
  '-9223372036854775808',
  '0.000000000000000000001',
  '',
  'false',
  'infinity',
  '-infinity',
  'infinity',
  '00000000-0000-0000-0000-000000000000',
  'null',
  '{}',
  '{}',
  String.raw`\x`,
];

async function insertAllTypes(table: string): Promise<void> {
  for (const row of [ROW_FULL, ROW_NULLS, ROW_EDGE]) {
    await scratch.pool.query(`INSERT INTO ${table} ${INSERT_COLUMNS} ${INSERT_PARAMS}`, row);
  }
}

describe('hash format: one field per column, PostgreSQL text output', () => {
  it('stores exact text for numbers, text, bool, date/time, uuid, jsonb, arrays, bytea and NULL', async () => {
    const config = await mirror(ALL_TYPES_DDL('types_h'), ['public.types_h']);
    await insertAllTypes('types_h');
    await settle(scratch, config);

    expect(await scratch.redis.hgetall(key('public.types_h', '1'))).toEqual({
      id: '1',
      i: '42',
      big: '9007199254740993',
      num: '12345678901234567890.123456789000',
      txt: 'a\'b"c\\d\ne\tf😀é Zoë naïve',
      b: 't',
      tstz: '2024-03-01 10:34:56.789+00',
      ts: '2024-03-01 12:34:56.789',
      d: '2024-02-01',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      j: '{"a": [1, 2.50, null], "k": "v"}',
      ia: '{1,NULL,3}',
      ta: String.raw`{a,"b,c","d\"e","f\\g",NULL,""}`,
      bin: String.raw`\xdeadbeef`,
    });
    // NULL columns are absent fields; only the key column is left.
    expect(await scratch.redis.hgetall(key('public.types_h', '2'))).toEqual({ id: '2' });
    expect(await scratch.redis.hgetall(key('public.types_h', '3'))).toEqual({
      id: '3',
      i: '-2147483648',
      big: '-9223372036854775808',
      num: '0.000000000000000000001',
      txt: '',
      b: 'f',
      tstz: 'infinity',
      ts: '-infinity',
      d: 'infinity',
      u: '00000000-0000-0000-0000-000000000000',
      j: 'null',
      ia: '{}',
      ta: '{}',
      bin: String.raw`\x`,
    });
    // The text survives byte for byte (UTF-8 in Redis, not re-encoded).
    const raw = await scratch.redis.hgetBuffer(key('public.types_h', '1'), 'txt');
    expect(raw?.toString('hex')).toBe('61276222635c640a650966f09f9880c3a9205a6fc3ab206e61c3af7665');

    // Setting a column to NULL removes its field; setting it back restores it.
    await scratch.pool.query(`UPDATE types_h SET big = NULL, txt = NULL WHERE id = 1`);
    await settle(scratch, config);
    const afterNull = await scratch.redis.hgetall(key('public.types_h', '1'));
    expect(afterNull).not.toHaveProperty('big');
    expect(afterNull).not.toHaveProperty('txt');
    expect(afterNull.num).toBe('12345678901234567890.123456789000');
    await scratch.pool.query(`UPDATE types_h SET big = 9007199254740993, txt = 'x' WHERE id = 1`);
    await settle(scratch, config);
    expect(await scratch.redis.hget(key('public.types_h', '1'), 'big')).toBe('9007199254740993');
    expect(await scratch.redis.hget(key('public.types_h', '1'), 'txt')).toBe('x');
    await expectMirrorClean(scratch, config);
  });
});

describe('json format: jsonb_build_object(...)::text', () => {
  it('stores to_jsonb rendering with every digit kept, and JSON null for NULL', async () => {
    const config = await mirror(ALL_TYPES_DDL('types_j'), [{ table: 'public.types_j', format: 'json' }]);
    await insertAllTypes('types_j');
    await settle(scratch, config);

    // jsonb orders object keys by length, then bytewise.
    const full = await scratch.redis.get(key('public.types_j', '1'));
    expect(full).toBe(
      String.raw`{"b": true, "d": "2024-02-01", "i": 42, "j": {"a": [1, 2.50, null], "k": "v"}, "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ` +
        String.raw`"ia": [1, null, 3], "id": 1, "ta": ["a", "b,c", "d\"e", "f\\g", null, ""], "ts": "2024-03-01T12:34:56.789", ` +
        String.raw`"big": 9007199254740993, "bin": "\\xdeadbeef", "num": 12345678901234567890.123456789000, ` +
        String.raw`"txt": "a'b\"c\\d\ne\tf😀é Zoë naïve", "tstz": "2024-03-01T10:34:56.789+00:00"}`,
    );
    // Digits beyond a JS number's precision are in the raw text exactly (JSON.parse would round them).
    expect(full).toContain('"big": 9007199254740993,');
    expect(full).toContain('"num": 12345678901234567890.123456789000,');
    const parsed = JSON.parse(full!) as Record<string, unknown>;
    expect(parsed.txt).toBe('a\'b"c\\d\ne\tf😀é Zoë naïve');
    expect(parsed.ta).toEqual(['a', 'b,c', 'd"e', 'f\\g', null, '']);
    expect(parsed.ia).toEqual([1, null, 3]);
    expect(parsed.j).toEqual({ a: [1, 2.5, null], k: 'v' });
    expect(parsed.bin).toBe('\\xdeadbeef');
    expect(parsed.tstz).toBe('2024-03-01T10:34:56.789+00:00');
    expect(parsed.b).toBe(true);
    expect(Object.keys(parsed).sort()).toEqual(['b', 'big', 'bin', 'd', 'i', 'ia', 'id', 'j', 'num', 'ta', 'ts', 'tstz', 'txt', 'u']);

    const nulls = await scratch.redis.get(key('public.types_j', '2'));
    expect(nulls).toBe(
      '{"b": null, "d": null, "i": null, "j": null, "u": null, "ia": null, "id": 2, "ta": null, "ts": null, ' +
        '"big": null, "bin": null, "num": null, "txt": null, "tstz": null}',
    );
    const parsedNulls = JSON.parse(nulls!) as Record<string, unknown>;
    expect(Object.keys(parsedNulls)).toHaveLength(14);
    expect(Object.entries(parsedNulls).filter(([, v]) => v !== null)).toEqual([['id', 2]]);

    const edge = await scratch.redis.get(key('public.types_j', '3'));
    expect(edge).toBe(
      String.raw`{"b": false, "d": "infinity", "i": -2147483648, "j": null, "u": "00000000-0000-0000-0000-000000000000", ` +
        String.raw`"ia": [], "id": 3, "ta": [], "ts": "-infinity", "big": -9223372036854775808, "bin": "\\x", ` +
        String.raw`"num": 0.000000000000000000001, "txt": "", "tstz": "infinity"}`,
    );
    expect(edge).toContain('"big": -9223372036854775808,');
    expect(edge).toContain('"num": 0.000000000000000000001,');
    expect(JSON.parse(edge!)).toMatchObject({ txt: '', j: null, ia: [], ta: [], bin: '\\x' });
    await expectMirrorClean(scratch, config);
  });
});

describe('large values', () => {
  it('mirrors a 1 MB text value exactly in both formats', async () => {
    const config = await mirror(
      `CREATE TABLE mb_h (id int PRIMARY KEY, body text); CREATE TABLE mb_j (id int PRIMARY KEY, body text);`,
      ['public.mb_h', { table: 'public.mb_j', format: 'json' }],
    );
    // 16 bytes of UTF-8 per unit: "a", "é" (2), "😀" (4), "\"", "\\", "\n", "'", "b", "c", "€" (3).
    const unit = 'aé😀"\\\n\'bc€';
    expect(Buffer.byteLength(unit)).toBe(16);
    const body = unit.repeat(65_536);
    expect(Buffer.byteLength(body)).toBe(1_048_576);
    await scratch.pool.query(`INSERT INTO mb_h VALUES (1, $1)`, [body]);
    await scratch.pool.query(`INSERT INTO mb_j VALUES (1, $1)`, [body]);
    await settle(scratch, config);

    const hashBody = await scratch.redis.hget(key('public.mb_h', '1'), 'body');
    expect(hashBody?.length).toBe(body.length);
    expect(hashBody === body).toBe(true);

    const json = await scratch.redis.get(key('public.mb_j', '1'));
    expect(json!.startsWith(String.raw`{"id": 1, "body": "aé😀\"\\\n'bc€aé😀\"\\\n'bc€`)).toBe(true);
    expect(json!.endsWith(String.raw`aé😀\"\\\n'bc€"}`)).toBe(true);
    // Every unit is 3 escapes longer in JSON: \" \\ \n.
    expect(Buffer.byteLength(json!)).toBe(Buffer.byteLength('{"id": 1, "body": ""}') + 65_536 * 19);
    const parsed = JSON.parse(json!) as { id: number; body: string };
    expect(parsed.id).toBe(1);
    expect(parsed.body === body).toBe(true);
    await expectMirrorClean(scratch, config);
  });
});

describe('keys whose text depends on session settings', () => {
  it('keeps a timestamptz key in canonical UTC ISO text when written from a New York, SQL/DMY session', async () => {
    const config = await mirror(
      `CREATE TABLE tsk_h (at timestamptz PRIMARY KEY, v text);
       CREATE TABLE tsk_j (at timestamptz PRIMARY KEY, v text);
       CREATE TABLE tsk_c (tenant text, at timestamptz, v int, PRIMARY KEY (tenant, at));`,
      ['public.tsk_h', { table: 'public.tsk_j', format: 'json' }, 'public.tsk_c'],
    );
    const odd = await oddSession();
    // An explicit offset, a New York local time (EDT in July) and a fraction of a second.
    await odd.query(`INSERT INTO tsk_h VALUES ('2024-03-01 12:34:56+02', 'a'), ('2024-07-04 08:00:00', 'b'), ('2024-12-31 23:59:59.5+00', 'c')`);
    await odd.query(`INSERT INTO tsk_j VALUES ('2024-03-01 12:34:56+02', 'a'), ('2024-07-04 08:00:00', 'b')`);
    await odd.query(`INSERT INTO tsk_c VALUES ('t:1', '2024-03-01 12:34:56+02', 1), ('t:1', '2024-07-04 08:00:00', 2)`);
    await settle(scratch, config);

    expect((await scratch.redis.keys(`${scratch.prefix}public.tsk_h:*`)).sort()).toEqual([
      `${scratch.prefix}public.tsk_h:2024-03-01 10\\:34\\:56+00`,
      `${scratch.prefix}public.tsk_h:2024-07-04 12\\:00\\:00+00`,
      `${scratch.prefix}public.tsk_h:2024-12-31 23\\:59\\:59.5+00`,
    ]);
    expect(await scratch.redis.hgetall(key('public.tsk_h', '2024-03-01 10\\:34\\:56+00'))).toEqual({ at: '2024-03-01 10:34:56+00', v: 'a' });
    expect(await scratch.redis.hgetall(key('public.tsk_h', '2024-07-04 12\\:00\\:00+00'))).toEqual({ at: '2024-07-04 12:00:00+00', v: 'b' });
    expect(await scratch.redis.hgetall(key('public.tsk_h', '2024-12-31 23\\:59\\:59.5+00'))).toEqual({ at: '2024-12-31 23:59:59.5+00', v: 'c' });
    expect(await scratch.redis.get(key('public.tsk_j', '2024-03-01 10\\:34\\:56+00'))).toBe('{"v": "a", "at": "2024-03-01T10:34:56+00:00"}');
    expect(await scratch.redis.get(key('public.tsk_j', '2024-07-04 12\\:00\\:00+00'))).toBe('{"v": "b", "at": "2024-07-04T12:00:00+00:00"}');
    expect(await scratch.redis.hgetall(key('public.tsk_c', 't\\:1:2024-03-01 10\\:34\\:56+00'))).toEqual({ tenant: 't:1', at: '2024-03-01 10:34:56+00', v: '1' });
    expect(await scratch.redis.hgetall(key('public.tsk_c', 't\\:1:2024-07-04 12\\:00\\:00+00'))).toEqual({ tenant: 't:1', at: '2024-07-04 12:00:00+00', v: '2' });
    await expectMirrorClean(scratch, config);

    // Still from the odd session: a value change, a key change, then deletes.
    await odd.query(`UPDATE tsk_h SET v = 'a2' WHERE at = '2024-03-01 10:34:56+00'`);
    await odd.query(`UPDATE tsk_h SET at = at + interval '1 hour' WHERE v = 'b'`);
    await odd.query(`UPDATE tsk_c SET at = '2024-03-01 11:00:00+00' WHERE v = 2`);
    await settle(scratch, config);
    expect(await scratch.redis.hgetall(key('public.tsk_h', '2024-03-01 10\\:34\\:56+00'))).toEqual({ at: '2024-03-01 10:34:56+00', v: 'a2' });
    expect(await scratch.redis.exists(key('public.tsk_h', '2024-07-04 12\\:00\\:00+00'))).toBe(0);
    expect(await scratch.redis.hgetall(key('public.tsk_h', '2024-07-04 13\\:00\\:00+00'))).toEqual({ at: '2024-07-04 13:00:00+00', v: 'b' });
    expect(await scratch.redis.exists(key('public.tsk_c', 't\\:1:2024-07-04 12\\:00\\:00+00'))).toBe(0);
    expect(await scratch.redis.hgetall(key('public.tsk_c', 't\\:1:2024-03-01 11\\:00\\:00+00'))).toEqual({ tenant: 't:1', at: '2024-03-01 11:00:00+00', v: '2' });
    await expectMirrorClean(scratch, config);

    await odd.query(`DELETE FROM tsk_h WHERE v = 'a2'`);
    await odd.query(`DELETE FROM tsk_j WHERE v = 'a'`);
    await odd.query(`DELETE FROM tsk_c WHERE v = 1`);
    await settle(scratch, config);
    expect(await scratch.redis.exists(key('public.tsk_h', '2024-03-01 10\\:34\\:56+00'))).toBe(0);
    expect(await scratch.redis.exists(key('public.tsk_j', '2024-03-01 10\\:34\\:56+00'))).toBe(0);
    expect(await scratch.redis.exists(key('public.tsk_c', 't\\:1:2024-03-01 10\\:34\\:56+00'))).toBe(0);
    expect(await scratch.redis.exists(key('public.tsk_h', '2024-07-04 13\\:00\\:00+00'))).toBe(1);
    expect(await scratch.redis.exists(key('public.tsk_j', '2024-07-04 12\\:00\\:00+00'))).toBe(1);
    const reports = await expectMirrorClean(scratch, config);
    expect(reports.map((r) => [r.table, r.rows])).toEqual(
      expect.arrayContaining([
        ['public.tsk_h', 2],
        ['public.tsk_j', 1],
        ['public.tsk_c', 1],
      ]),
    );
  });

  it('keeps a date key in ISO text when written under DateStyle SQL, DMY', async () => {
    const config = await mirror(
      `CREATE TABLE dk_h (d date PRIMARY KEY, v text); CREATE TABLE dk_j (d date PRIMARY KEY, v text);`,
      ['public.dk_h', { table: 'public.dk_j', format: 'json' }],
    );
    const odd = await oddSession();
    // '01/02/2024' is 1 February under DMY; '13/02/2024' prints as a day no MDY reader accepts.
    await odd.query(`INSERT INTO dk_h VALUES ('01/02/2024', 'feb1'), ('2024-02-13', 'feb13')`);
    await odd.query(`INSERT INTO dk_j VALUES ('01/02/2024', 'feb1'), ('13/02/2024', 'feb13')`);
    await settle(scratch, config);

    expect((await scratch.redis.keys(`${scratch.prefix}public.dk_h:*`)).sort()).toEqual([
      `${scratch.prefix}public.dk_h:2024-02-01`,
      `${scratch.prefix}public.dk_h:2024-02-13`,
    ]);
    expect(await scratch.redis.hgetall(key('public.dk_h', '2024-02-01'))).toEqual({ d: '2024-02-01', v: 'feb1' });
    expect(await scratch.redis.hgetall(key('public.dk_h', '2024-02-13'))).toEqual({ d: '2024-02-13', v: 'feb13' });
    expect(await scratch.redis.exists(key('public.dk_h', '2024-01-02'))).toBe(0);
    expect(await scratch.redis.get(key('public.dk_j', '2024-02-01'))).toBe('{"d": "2024-02-01", "v": "feb1"}');
    expect(await scratch.redis.get(key('public.dk_j', '2024-02-13'))).toBe('{"d": "2024-02-13", "v": "feb13"}');
    await expectMirrorClean(scratch, config);

    await odd.query(`DELETE FROM dk_h WHERE v = 'feb1'`);
    await odd.query(`UPDATE dk_j SET d = '14/02/2024' WHERE v = 'feb13'`);
    await settle(scratch, config);
    expect(await scratch.redis.exists(key('public.dk_h', '2024-02-01'))).toBe(0);
    expect(await scratch.redis.hgetall(key('public.dk_h', '2024-02-13'))).toEqual({ d: '2024-02-13', v: 'feb13' });
    expect(await scratch.redis.exists(key('public.dk_j', '2024-02-13'))).toBe(0);
    expect(await scratch.redis.get(key('public.dk_j', '2024-02-14'))).toBe('{"d": "2024-02-14", "v": "feb13"}');
    await expectMirrorClean(scratch, config);
  });
});
