import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { install } from '../src/install/install.js';
import { loadRegistry } from '../src/daemon/registry.js';
import { buildApplyStatement, claimAndRead, type AppliedBatch, type WriteForm } from '../src/daemon/apply-statement.js';
import { createDb } from '../src/db/kysely.js';
import { keysOf } from '../src/redis/fenced-block.js';
import { createScratch, type Scratch } from './helpers/scratch.js';

// The daemon's claim-and-read statement on its own: what a batch holds decides what Redis gets.
describe('the claim-and-read statement', () => {
  let scratch: Scratch;
  beforeAll(async () => {
    scratch = await createScratch('applystmt');
    await scratch.pool.query(`
      CREATE TABLE one (id int PRIMARY KEY, flag boolean, code char(4), addr inet, name text);
      CREATE TABLE two (a text, b int, v text, PRIMARY KEY (a, b));
      CREATE TABLE later (id int PRIMARY KEY)`);
    await install(scratch.config(['public.one', { table: 'public.two', format: 'json' }]), scratch.pool);
  });
  afterAll(async () => {
    await scratch.cleanup();
  });

  /** Prepared-statement names are per connection and the pool reuses connections. */
  let generation = 0;

  /** Claims one batch with a statement built from the registry as it is now, then rolls back. */
  async function claim(maxKeys = 1000, fromId = 0n, writes: WriteForm = 'rows'): Promise<AppliedBatch> {
    const registry = await loadRegistry(createDb(scratch.pool), 'redis_mirror');
    const statement = buildApplyStatement({ toolSchema: 'redis_mirror', plans: [...registry.plans.values()], maxKeys, generation: ++generation, utf8Server: true, writes });
    const client = await scratch.pool.connect();
    try {
      await client.query('BEGIN');
      return await claimAndRead(client, statement, registry.plans, fromId);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  it('reads each changed key once, as it is now, with values printed as PostgreSQL prints them', async () => {
    await scratch.pool.query(`INSERT INTO one VALUES (1, true, 'ab', '10.0.0.1', 'x'), (2, NULL, NULL, NULL, NULL)`);
    await scratch.pool.query(`UPDATE one SET name = 'y' WHERE id = 1`);
    await scratch.pool.query(`INSERT INTO two VALUES ('k:1', 7, 'v')`);
    await scratch.pool.query(`DELETE FROM one WHERE id = 2`);
    const batch = await claim();
    expect(batch.claimedKeys).toBe(5);
    expect(batch.result.entries).toBe(4);
    const writes = batch.steps.flatMap((s) => s.writes);
    const byKey = new Map(writes.map((w) => [w.key, w]));
    expect(writes).toHaveLength(3);
    const one = byKey.get(`${scratch.prefix}public.one:1`);
    const fields = ['id', '1', 'flag', 't', 'code', 'ab  ', 'addr', '10.0.0.1', 'name', 'y'];
    expect(one).toEqual({ key: `${scratch.prefix}public.one:1`, fields: 5, encoded: fields.map((f) => `$${Buffer.byteLength(f)}\r\n${f}\r\n`).join('') });
    expect(byKey.get(`${scratch.prefix}public.one:2`)).toEqual({ key: `${scratch.prefix}public.one:2`, delete: true });
    const two = byKey.get(`${scratch.prefix}public.two:k\\:1:7`);
    expect(two !== undefined && 'json' in two ? JSON.parse(two.json) : two).toEqual({ a: 'k:1', b: 7, v: 'v' });
    await scratch.pool.query(`TRUNCATE redis_mirror.journal`);
  });

  it('drops the keys a TRUNCATE in the same batch wiped, and keeps those written after it', async () => {
    await scratch.pool.query(`INSERT INTO one (id) VALUES (10), (11)`);
    await scratch.pool.query(`TRUNCATE one`);
    await scratch.pool.query(`INSERT INTO one (id, name) VALUES (12, 'é')`);
    const batch = await claim();
    expect(batch.result.truncates).toBe(1);
    expect(batch.steps).toHaveLength(1);
    expect(batch.steps[0]!.truncatePattern).toBeDefined();
    expect(batch.steps[0]!.writes.map((w) => w.key)).toEqual([`${scratch.prefix}public.one:12`]);
    expect(batch.steps[0]!.writes[0]).toMatchObject({ fields: 2, encoded: '$2\r\nid\r\n$2\r\n12\r\n$4\r\nname\r\n$2\r\né\r\n' });
    await scratch.pool.query(`TRUNCATE redis_mirror.journal`);
  });

  it('frames whole script calls exactly as the per-key rows would be written (standalone Redis)', async () => {
    // Keys that need escaping, a key template, NULLs, a deleted row, a row with no mirrored value.
    await scratch.pool.query(`INSERT INTO one VALUES (1, true, 'ab', '10.0.0.1', 'x:\\y'), (2, NULL, NULL, NULL, NULL), (3, false, NULL, NULL, 'é €')`);
    await scratch.pool.query(`INSERT INTO two VALUES ('k:1\\', 7, 'v'), ('ü', -1, NULL), ('gone', 0, NULL)`);
    await scratch.pool.query(`DELETE FROM one WHERE id = 3; DELETE FROM two WHERE a = 'gone'`);
    await scratch.pool.query(`INSERT INTO one (id) SELECT g FROM generate_series(1000, 2199) g`);
    // Each claim is rolled back: both read the same journal.
    const perKey = await claim(5000);
    const framed = await claim(5000, 0n, 'calls');
    expect(framed.steps.flatMap((s) => s.writes)).toEqual([]);
    expect(framed.result).toEqual(perKey.result);
    const calls = framed.steps.flatMap((s) => s.calls);
    // 1,203 keys of `one` (at most 500 a call) and 3 of `two`.
    expect(calls.map((c) => c.keys).sort((a, b) => a - b)).toEqual([3, 203, 500, 500]);
    const decoded = new Map<string, string[]>();
    for (const call of calls) {
      const keys = bulkStrings(call.keyText);
      const args = bulkStrings(call.argText);
      expect(keys).toHaveLength(call.keys);
      expect(args).toHaveLength(call.args);
      for (const key of keys) {
        const n = args[0] === 'h' ? 2 + 2 * Number(args[1]) : args[0] === 's' ? 2 : 1;
        decoded.set(key, args.splice(0, n));
      }
      expect(args).toEqual([]);
    }
    const expected = new Map(
      perKey.steps.flatMap((s) => s.writes).map((w): [string, string[]] => {
        if ('encoded' in w) return [w.key, ['h', String(w.fields), ...bulkStrings(w.encoded)]];
        if ('json' in w) return [w.key, ['s', w.json]];
        return [w.key, ['d']];
      }),
    );
    expect(decoded).toEqual(expected);
    expect(decoded.get(`${scratch.prefix}public.two:k\\:1\\\\:7`)?.[0]).toBe('s');
    expect(decoded.get(`${scratch.prefix}public.one:3`)).toEqual(['d']);
    await scratch.pool.query(`TRUNCATE redis_mirror.journal`);
  });

  it('frames plain commands for MULTI ... EXEC that leave each key exactly as its row (standalone Redis)', async () => {
    // As above, plus rows with some NULL columns, whose fields must go (HDEL).
    await scratch.pool.query(`TRUNCATE one, two; TRUNCATE redis_mirror.journal`);
    await scratch.pool.query(`INSERT INTO one VALUES (1, true, 'ab', '10.0.0.1', 'x:\\y'), (2, NULL, NULL, NULL, NULL), (3, false, NULL, NULL, 'é €'), (4, NULL, 'cd', NULL, 'z')`);
    await scratch.pool.query(`INSERT INTO two VALUES ('k:1\\', 7, 'v'), ('ü', -1, NULL), ('gone', 0, NULL)`);
    await scratch.pool.query(`DELETE FROM one WHERE id = 3; DELETE FROM two WHERE a = 'gone'`);
    await scratch.pool.query(`INSERT INTO one (id) SELECT g FROM generate_series(1000, 2199) g`);
    const perKey = await claim(5000);
    const framed = await claim(5000, 0n, 'commands');
    expect(framed.steps.flatMap((s) => [...s.writes, ...s.calls])).toEqual([]);
    expect(framed.result).toEqual(perKey.result);
    const blocks = framed.steps.flatMap((s) => s.blocks);
    // 1,204 keys of `one` (at most 1,000 a block) and 3 of `two`.
    expect(blocks.map((b) => b.layout.keys).sort((a, b) => a - b)).toEqual([3, 204, 1000]);
    const decoded = new Map<string, string[][]>();
    for (const block of blocks) {
      const commands = respCommands(block.text);
      expect(commands).toHaveLength(block.layout.commands);
      // The layout points at each HLEN; keysOf (for rewriting keys whole) finds each key written, in order.
      const hlens = [...block.layout.checks.at].map((at) => commands[at]!);
      expect(hlens.every((c) => c[0] === 'HLEN')).toBe(true);
      const keys = keysOf(block.text);
      expect(keys).toHaveLength(block.layout.keys);
      const written: string[] = [];
      for (const command of commands) {
        const key = command[1]!;
        if (!decoded.has(key)) written.push(key);
        decoded.set(key, [...(decoded.get(key) ?? []), command]);
      }
      expect(written).toEqual(keys);
      expect([...block.layout.checks.expected]).toEqual(hlens.map((c) => decoded.get(c[1]!)!.find((d) => d[0] === 'HSET')!.length / 2 - 1));
    }
    const columns = ['id', 'flag', 'code', 'addr', 'name'];
    const expected = new Map(
      perKey.steps.flatMap((s) => s.writes).map((w): [string, string[][]] => {
        if ('encoded' in w) {
          const fields = bulkStrings(w.encoded);
          const nulls = columns.filter((c) => !fields.includes(c));
          return [w.key, [['HSET', w.key, ...fields], ...(nulls.length > 0 ? [['HDEL', w.key, ...nulls]] : []), ['HLEN', w.key]]];
        }
        if ('json' in w) return [w.key, [['SET', w.key, w.json]]];
        return [w.key, [['DEL', w.key]]];
      }),
    );
    expect(decoded).toEqual(expected);
    expect(decoded.get(`${scratch.prefix}public.one:4`)).toContainEqual(['HDEL', `${scratch.prefix}public.one:4`, 'flag', 'addr']);
    await scratch.pool.query(`TRUNCATE redis_mirror.journal`);
  });

  it('splits the commands of a table into blocks of at most 4 MB, each whole (big rows)', async () => {
    await scratch.pool.query(`TRUNCATE one, two; TRUNCATE redis_mirror.journal`);
    // Ten rows of 1 MB: no block may pass 4 MB, so there are at least three.
    await scratch.pool.query(`INSERT INTO one (id, name) SELECT g, repeat(chr(65 + g), 1000000) FROM generate_series(1, 10) g`);
    const blocks = (await claim(1000, 0n, 'commands')).steps.flatMap((s) => s.blocks);
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    expect(blocks.reduce((n, b) => n + b.layout.keys, 0)).toBe(10);
    for (const block of blocks) {
      expect(Buffer.byteLength(block.text)).toBeLessThanOrEqual(4 * 1024 * 1024);
      const commands = respCommands(block.text);
      expect(commands).toHaveLength(block.layout.commands);
      // HSET key id <id> name <1 MB>: compared whole, not printed.
      for (const hset of commands.filter((c) => c[0] === 'HSET')) expect(hset[5] === String.fromCharCode(65 + Number(hset[3])).repeat(1_000_000)).toBe(true);
    }
    await scratch.pool.query(`TRUNCATE redis_mirror.journal`);
  });

  it('keeps blocks of rows of mixed sizes within 4 MB, but for a row bigger than that alone, without many more blocks than needed', async () => {
    await scratch.pool.query(`TRUNCATE one, two; TRUNCATE redis_mirror.journal`);
    // 1,000 small rows, 600 of 20 kB, 10 of 3 MB and 2 of 5 MB: 52 MB in all.
    await scratch.pool.query(`
      INSERT INTO one (id, name) SELECT g, CASE WHEN g <= 1000 THEN 'small ' || g WHEN g <= 1600 THEN repeat('m', 20000)
        WHEN g <= 1610 THEN repeat('L', 3000000) ELSE repeat('X', 5000000) END FROM generate_series(1, 1612) g`);
    const blocks = (await claim(5000, 0n, 'commands')).steps.flatMap((s) => s.blocks);
    expect(blocks.reduce((n, b) => n + b.layout.keys, 0)).toBe(1612);
    for (const block of blocks) {
      expect(block.layout.keys).toBeLessThanOrEqual(1000);
      if (block.layout.keys > 1) expect(Buffer.byteLength(block.text)).toBeLessThanOrEqual(4 * 1024 * 1024);
      expect(respCommands(block.text)).toHaveLength(block.layout.commands);
    }
    const big = blocks.filter((b) => Buffer.byteLength(b.text) > 2_000_000);
    expect(big.map((b) => b.layout.keys)).toEqual(Array.from({ length: 12 }, () => 1));
    // Keys are grouped by their number among all 1,612, so a class of sizes may fill its blocks
    // partly: at most 2 blocks of small rows, 13 of 128 numbers for the 20 kB ones, 12 alone.
    expect(blocks.length).toBeLessThanOrEqual(27);
    await scratch.pool.query(`TRUNCATE one, two; TRUNCATE redis_mirror.journal`);
  });

  it('prints every type exactly as PostgreSQL prints it, whether cast to text or printed by its output function', async () => {
    await scratch.pool.query(`
      CREATE TABLE typed (id int PRIMARY KEY, a float4, b float8, c numeric, d uuid, e date, f time, g timetz, h timestamp,
        i timestamptz, j interval, k json, l jsonb, m int2, n int8, o oid, p boolean, q char(3), r inet, s text[], u varchar)`);
    await install(scratch.config(['public.typed'], { schema: 'typed_mirror' }), scratch.pool);
    await scratch.pool.query(`INSERT INTO typed VALUES
      (1, 1e-7, 'NaN', 1.500, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '23:59:59.999', '01:02:03+05:30',
       '2024-01-02 03:04:05.678', '2024-01-02 03:04:05+02', '1 year 2 mons -3 days 04:05:06', '{"a": [1, 2]}', '{"b": 1, "a": 2}',
       -32768, 9223372036854775807, 4294967295, true, 'x', '10.0.0.1', '{"p q",r}', 'é'),
      (2, '-Infinity', 3.141592653589793, 'NaN', NULL, 'infinity', '00:00', NULL, '-infinity', NULL, '0', 'null', '[]',
       NULL, NULL, NULL, false, NULL, '::1/128', '{}', NULL)`);
    const registry = await loadRegistry(createDb(scratch.pool), 'typed_mirror');
    const statement = buildApplyStatement({ toolSchema: 'typed_mirror', plans: [...registry.plans.values()], maxKeys: 100, generation: ++generation, utf8Server: true });
    const client = await scratch.pool.connect();
    try {
      await client.query('BEGIN');
      const batch = await claimAndRead(client, statement, registry.plans, 0n);
      const printed = await client.query<Record<string, string | null>>({ text: 'SELECT * FROM typed ORDER BY id', types: { getTypeParser: () => (v: string) => v } });
      const byKey = new Map(batch.steps.flatMap((step) => step.writes).map((w) => [w.key, w]));
      for (const row of printed.rows) {
        const write = byKey.get(`${scratch.prefix}public.typed:${row.id}`);
        const fields = write !== undefined && 'encoded' in write ? bulkStrings(write.encoded) : [];
        const expected = Object.entries(row).flatMap(([column, value]) => (value === null ? [] : [column, value]));
        expect(fields).toEqual(expected);
      }
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('claims whole journal rows up to the key budget, always at least one', async () => {
    await scratch.pool.query(`INSERT INTO one (id) SELECT g FROM generate_series(100, 104) g`);
    await scratch.pool.query(`INSERT INTO one (id) VALUES (105)`);
    expect((await claim(3)).claimedKeys).toBe(5);
    expect((await claim(6)).claimedKeys).toBe(6);
    await scratch.pool.query(`TRUNCATE redis_mirror.journal`);
  });

  it('starts at the given journal id, and reports the last id it claimed', async () => {
    for (const id of [200, 201, 202]) await scratch.pool.query(`INSERT INTO one (id) VALUES ($1)`, [id]);
    const ids = (await scratch.pool.query<{ id: string }>(`SELECT id::text FROM redis_mirror.journal ORDER BY id`)).rows.map((r) => BigInt(r.id));
    const batch = await claim(1000, ids[1]!);
    expect(batch.claimedKeys).toBe(2);
    expect(batch.lastId).toBe(ids[2]);
    expect(batch.steps.flatMap((s) => s.writes).map((w) => w.key).sort()).toEqual([`${scratch.prefix}public.one:201`, `${scratch.prefix}public.one:202`]);
    await scratch.pool.query(`TRUNCATE redis_mirror.journal`);
  });

  it('names the tables it does not know, and leaves their rows for a statement that does', async () => {
    const registry = await loadRegistry(createDb(scratch.pool), 'redis_mirror');
    await install(scratch.config(['public.one', { table: 'public.two', format: 'json' }, 'public.later']), scratch.pool);
    await scratch.pool.query(`INSERT INTO later VALUES (1)`);
    const stale = buildApplyStatement({ toolSchema: 'redis_mirror', plans: [...registry.plans.values()], maxKeys: 100, generation: ++generation, utf8Server: true });
    const client = await scratch.pool.connect();
    try {
      await client.query('BEGIN');
      const batch = await claimAndRead(client, stale, registry.plans, 0n);
      const later = await scratch.pool.query<{ oid: number }>(`SELECT 'later'::regclass::oid AS oid`);
      expect(batch.unknown).toEqual([Number(later.rows[0]!.oid)]);
      expect(batch.steps).toEqual([]);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
    const fresh = await claim();
    expect(fresh.unknown).toEqual([]);
    expect(fresh.steps.flatMap((s) => s.writes).map((w) => w.key)).toEqual([`${scratch.prefix}public.later:1`]);
  });
});

/** The RESP commands (`*<n>\r\n` and n bulk strings) that `text` is made of. */
function respCommands(text: string): string[][] {
  const bytes = Buffer.from(text);
  const out: string[][] = [];
  let at = 0;
  while (at < bytes.length) {
    expect(String.fromCharCode(bytes[at]!)).toBe('*');
    let head = bytes.indexOf('\r\n', at);
    const n = Number(bytes.subarray(at + 1, head).toString());
    at = head + 2;
    const command: string[] = [];
    for (let i = 0; i < n; i++) {
      head = bytes.indexOf('\r\n', at);
      const length = Number(bytes.subarray(at + 1, head).toString());
      command.push(bytes.subarray(head + 2, head + 2 + length).toString());
      at = head + 4 + length;
    }
    out.push(command);
  }
  return out;
}

/** The RESP bulk strings (`$<bytes>\r\n<text>\r\n`...) that `text` is made of. */
function bulkStrings(text: string): string[] {
  const bytes = Buffer.from(text);
  const out: string[] = [];
  let at = 0;
  while (at < bytes.length) {
    const head = bytes.indexOf('\r\n', at);
    expect(String.fromCharCode(bytes[at]!)).toBe('$');
    const length = Number(bytes.subarray(at + 1, head).toString());
    out.push(bytes.subarray(head + 2, head + 2 + length).toString());
    expect(bytes.subarray(head + 2 + length, head + 4 + length).toString()).toBe('\r\n');
    at = head + 4 + length;
  }
  return out;
}
