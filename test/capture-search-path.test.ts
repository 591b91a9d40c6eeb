import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { install } from '../src/install/install.js';
import { clientConfig } from '../src/db/connect.js';
import { quoteIdent } from '../src/sql/quote.js';
import { createScratch, expectMirrorClean, settle, startDaemon, type Scratch } from './helpers/scratch.js';

/**
 * The capture functions are SECURITY DEFINER and, to keep writes cheap, pin no search_path
 * (sql/table.sql): they must resolve nothing through the caller's. A writer whose search_path
 * puts its own schema before pg_catalog offers a look-alike of every function, operator, type
 * and aggregate they use; each one raises, so a single unqualified name fails the write.
 */
const HOSTILE = `
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.hijacked() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked through the search_path'; END $$;
CREATE FUNCTION hostile.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT hostile.hijacked()';
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.eq);
CREATE FUNCTION hostile.gt(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT hostile.hijacked()';
CREATE OPERATOR hostile.> (LEFTARG = integer, RIGHTARG = integer, FUNCTION = hostile.gt);
CREATE FUNCTION hostile.lt(double precision, numeric) RETURNS boolean LANGUAGE sql AS 'SELECT hostile.hijacked()';
CREATE OPERATOR hostile.< (LEFTARG = double precision, RIGHTARG = numeric, FUNCTION = hostile.lt);
CREATE FUNCTION hostile.cat(text, oid) RETURNS text LANGUAGE sql AS 'SELECT hostile.hijacked()::text';
CREATE OPERATOR hostile.|| (LEFTARG = text, RIGHTARG = oid, FUNCTION = hostile.cat);
CREATE FUNCTION hostile.minus(bigint, integer) RETURNS bigint LANGUAGE sql AS 'SELECT hostile.hijacked()::int';
CREATE OPERATOR hostile.- (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = hostile.minus);
CREATE FUNCTION hostile.div(bigint, integer) RETURNS bigint LANGUAGE sql AS 'SELECT hostile.hijacked()::int';
CREATE OPERATOR hostile./ (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = hostile.div);
CREATE FUNCTION hostile.array_length(anyarray, integer) RETURNS integer LANGUAGE sql AS 'SELECT hostile.hijacked()::int';
CREATE FUNCTION hostile.pg_notify(text, text) RETURNS void LANGUAGE sql AS 'SELECT hostile.hijacked()';
CREATE FUNCTION hostile.pg_try_advisory_xact_lock_shared(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT hostile.hijacked()';
CREATE FUNCTION hostile.pg_notification_queue_usage() RETURNS double precision LANGUAGE sql AS 'SELECT hostile.hijacked()::int::float8';
-- Not a window function: row_number() OVER () resolved here fails too.
CREATE FUNCTION hostile.row_number() RETURNS bigint LANGUAGE sql AS 'SELECT hostile.hijacked()::int';
CREATE FUNCTION hostile.agg_step(anyarray, anynonarray) RETURNS anyarray LANGUAGE sql AS 'SELECT CASE WHEN hostile.hijacked() THEN $1 END';
CREATE AGGREGATE hostile.array_agg(anynonarray) (SFUNC = hostile.agg_step, STYPE = anyarray);
CREATE DOMAIN hostile.text AS pg_catalog.text CHECK (hostile.hijacked());
-- What a partitioned table's capture function uses besides.
CREATE FUNCTION hostile.pg_partition_ancestors(regclass) RETURNS SETOF regclass LANGUAGE sql AS 'SELECT hostile.hijacked()::int::oid::regclass';
CREATE FUNCTION hostile.reg_eq(regclass, regclass) RETURNS boolean LANGUAGE sql AS 'SELECT hostile.hijacked()';
CREATE OPERATOR hostile.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = hostile.reg_eq);
CREATE FUNCTION hostile.format(text, text, text, name, name) RETURNS text LANGUAGE sql AS 'SELECT hostile.hijacked()::text';
CREATE FUNCTION hostile.set_config(text, text, boolean) RETURNS text LANGUAGE sql AS 'SELECT hostile.hijacked()::text';
CREATE FUNCTION hostile.current_setting(text, boolean) RETURNS text LANGUAGE sql AS 'SELECT hostile.hijacked()::text';
CREATE FUNCTION hostile.pg_partition_root(regclass) RETURNS regclass LANGUAGE sql AS 'SELECT hostile.hijacked()::int::oid::regclass';
`;

let scratch: Scratch;
beforeAll(async () => {
  scratch = await createScratch('searchpath');
  await scratch.pool.query(`${HOSTILE}
    CREATE TABLE public.t (id int PRIMARY KEY, v int);
    CREATE TABLE public.pair (a int, b text, v int, PRIMARY KEY (a, b));
    CREATE TABLE public.parts (region text, id int, v int, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
    CREATE TABLE public.parts_a PARTITION OF public.parts FOR VALUES IN ('a');
    CREATE TABLE public.parts_b PARTITION OF public.parts FOR VALUES IN ('b');`);
});
afterAll(async () => {
  await scratch.cleanup();
});

describe('capture functions under a hostile search_path', () => {
  it('resolve nothing through it: every kind of write is journaled and mirrored', async () => {
    const config = scratch.config(['public.t', 'public.pair']);
    await install(config, scratch.pool);
    const journal = `${quoteIdent(config.schema)}.journal`;
    const writer = new pg.Client(clientConfig(scratch.databaseUrl));
    await writer.connect();
    await writer.query(`SET search_path = hostile, pg_catalog, public`);
    try {
      // With no daemon, the wake-up path takes the lock; the chunked path runs for > 1000 rows.
      await writer.query(`INSERT INTO t SELECT g, g FROM generate_series(1, 2500) g`);
      await writer.query(`INSERT INTO pair VALUES (1, 'x', 1), (2, 'y', 2)`);
      await writer.query(`UPDATE t SET v = v + 1 WHERE id < 0`);
      const rows = await scratch.pool.query<{ n: string }>(`SELECT array_length(keys, 1) AS n FROM ${journal}`);
      // A statement that changed nothing leaves no journal row.
      expect(rows.rows.map((r) => Number(r.n)).sort((a, b) => a - b)).toEqual([2, 500, 1000, 1000]);

      // An idle daemon holds the wake lock: now writes also NOTIFY it.
      const daemon = await startDaemon(config, { pollIntervalMs: 600_000 });
      try {
        await settle(scratch, config);
        await writer.query(`UPDATE t SET v = v * 2 WHERE id <= 10`);
        await writer.query(`UPDATE t SET id = 100000 WHERE id = 1`);
        await writer.query(`DELETE FROM t WHERE id = 2`);
        await writer.query(`UPDATE pair SET b = 'z' WHERE a = 1`);
        await writer.query(`TRUNCATE pair`);
        await writer.query(`INSERT INTO pair VALUES (3, 'w', 3)`);
        await settle(scratch, config);
        await expectMirrorClean(scratch, config);
      } finally {
        await daemon.stop();
      }
    } finally {
      await writer.end();
    }
  });

  it('resolve nothing through it for a partitioned table either: writes to it and to its partitions, moves, TRUNCATE of one', async () => {
    const config = scratch.config(['public.parts']);
    await install(config, scratch.pool);
    const daemon = await startDaemon(config, { pollIntervalMs: 600_000 });
    const writer = new pg.Client(clientConfig(scratch.databaseUrl));
    await writer.connect();
    await writer.query(`SET search_path = hostile, pg_catalog, public`);
    try {
      await writer.query(`INSERT INTO parts SELECT 'a', g, g FROM generate_series(1, 1500) g`);
      await writer.query(`INSERT INTO parts_b VALUES ('b', 1, 1), ('b', 2, 2)`);
      // (The writer's own statements use no text "=": hostile offers one.)
      await writer.query(`UPDATE parts SET region = 'b' WHERE id BETWEEN 10 AND 20`);
      await writer.query(`UPDATE parts_a SET id = -id WHERE id = 5`);
      await writer.query(`DELETE FROM parts_b WHERE id = 1`);
      await writer.query(`TRUNCATE parts_a`);
      await settle(scratch, config);
      const [report] = await expectMirrorClean(scratch, config);
      expect(report!.rows).toBe(12);
      await writer.query(`TRUNCATE parts`);
      await writer.query(`INSERT INTO parts_b VALUES ('b', 7, 7)`);
      await settle(scratch, config);
      const [after] = await expectMirrorClean(scratch, config);
      expect(after!.rows).toBe(1);
    } finally {
      await writer.end();
      await daemon.stop();
    }
  });
});
