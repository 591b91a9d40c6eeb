-- pg-redis-mirror {{version}}: the tool's own schema. Nothing here touches application tables.
CREATE SCHEMA IF NOT EXISTS {{schema}};

CREATE TABLE IF NOT EXISTS {{schema}}.meta (
  key text PRIMARY KEY,
  value text NOT NULL
);

-- One row per mirrored table; the daemon reads its options from here, not from a config file.
CREATE TABLE IF NOT EXISTS {{schema}}.tables (
  rel regclass PRIMARY KEY,
  schema_name text NOT NULL,
  table_name text NOT NULL,
  spec jsonb NOT NULL,
  spec_hash text NOT NULL,
  installed_at timestamptz NOT NULL DEFAULT now(),
  -- When `sync` last copied the whole table; NULL: never, or its options changed since.
  synced_at timestamptz,
  UNIQUE (schema_name, table_name)
);
ALTER TABLE {{schema}}.tables ADD COLUMN IF NOT EXISTS synced_at timestamptz;

-- Which keys changed, written in the same transaction as the change. Never row data.
-- keys: up to 1000 key values (1-D) or key tuples (2-D, composite keys); op 'k' = keys, 't' = truncate.
-- Written only by the tables' capture functions (SECURITY DEFINER); read and deleted by the daemon.
CREATE TABLE IF NOT EXISTS {{schema}}.journal (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rel oid NOT NULL,
  op "char" NOT NULL DEFAULT 'k',
  keys text[],
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A big statement's keys are journaled 1000 to a row, which PostgreSQL compresses as it writes
-- them: with lz4 (where the server was built with it) instead of pglz, the writer's 100k-row
-- UPDATE paid about a third less for its journal (bench/RESULTS.md). An upgrade of an install
-- that has it already skips the ALTER, which locks the journal against every writer.
DO {{tag}}
BEGIN
  IF 'lz4' OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.unnest(s.enumvals) FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'default_toast_compression')
     AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) {{journal_literal}}::pg_catalog.regclass
                     AND a.attname OPERATOR(pg_catalog.=) 'keys' AND a.attcompression OPERATOR(pg_catalog.=) 'l') THEN
    ALTER TABLE {{schema}}.journal ALTER COLUMN keys SET COMPRESSION lz4;
  END IF;
END
{{tag}};

-- A queue that swings from empty to millions of rows: vacuum it early and often. But never
-- truncate it: a vacuum that finds its last pages empty (a drained queue) tries to cut them off
-- under an ACCESS EXCLUSIVE lock, which every capturing write waits for while it is held, and
-- which a vacuum keeps trying for up to 5 s while writers hold theirs. Under steady writes the
-- daemon's vacuums took 0.6-5 s instead of 3 ms; the freed pages are soon written again anyway.
ALTER TABLE {{schema}}.journal SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 5000,
  autovacuum_analyze_scale_factor = 0.0, autovacuum_analyze_threshold = 5000, vacuum_truncate = false);

INSERT INTO {{schema}}.meta (key, value) VALUES ('version', {{version_literal}})
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;

-- The daemon's state (it only ever UPDATEs these rows): install_id names its hash in Redis,
-- redis_epoch is the generation of the data there (a mismatch means Redis lost it), recopy is
-- set while the tables are being copied again after that, leader_epoch is the fencing token of
-- the leading daemon, raised by each new leader.
INSERT INTO {{schema}}.meta (key, value)
VALUES ('install_id', pg_catalog.gen_random_uuid()::text), ('redis_epoch', ''), ('recopy', 'false'), ('leader_epoch', '0')
ON CONFLICT (key) DO NOTHING;
