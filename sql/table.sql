-- {{display}}: capture changed keys into the journal.
-- SECURITY DEFINER: application roles need no privileges on the tool's schema, and cannot
-- write journal entries except through these triggers.
-- No SET search_path: that clause cost every writing statement about 2.5 µs (bench/RESULTS.md).
-- Instead, nothing in the body is looked up through the caller's search_path: the journal is
-- schema-qualified, every function, operator and type is pg_catalog-qualified (never BETWEEN,
-- which looks up its operators), and changed_rows, a transition table, is found before any
-- schema is searched. test/capture-search-path.test.ts holds this to it.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER{{settings}}
AS {{tag}}
DECLARE
  entry bigint;
  n_keys integer;{{declare_rel}}
BEGIN{{resolve_rel}}
  IF TG_LEVEL OPERATOR(pg_catalog.=) 'ROW' THEN
    -- Fires only for rows whose key changed: the old key must leave Redis.
    INSERT INTO {{schema}}.journal (rel, keys) VALUES ({{rel}}, ARRAY[{{old_key}}]);
{{partition_truncate}}  ELSIF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
    INSERT INTO {{schema}}.journal (rel, op) VALUES ({{rel}}, 't');
{{truncate_done}}{{moved_rows}}  ELSE
    -- changed_rows: the new rows of an INSERT or UPDATE, the old rows of a DELETE.
    -- One journal row per statement (per 1000 keys). The common small statement costs one
    -- INSERT ... VALUES of an ARRAY(subquery), the cheapest form measured (an INSERT ... SELECT
    -- that filtered or aggregated the keys cost the writer 2-5 µs more). The LIMIT stops this
    -- first look at 1001 rows, so a big statement's transition table (spilled to disk past
    -- work_mem) is read once more, not twice. A statement that changed no rows, or more than
    -- 1000, takes its row back and, for the latter, writes the keys in chunks.
    INSERT INTO {{schema}}.journal (rel, keys) VALUES ({{rel}}, ARRAY(SELECT {{key}} FROM changed_rows LIMIT 1001))
      RETURNING id, pg_catalog.array_length(keys, 1) INTO entry, n_keys;
    IF n_keys IS NULL OR n_keys OPERATOR(pg_catalog.>) 1000 THEN
      DELETE FROM {{schema}}.journal WHERE id OPERATOR(pg_catalog.=) entry;
      INSERT INTO {{schema}}.journal (rel, keys)
        SELECT {{rel}}, pg_catalog.array_agg(s.k) FROM (SELECT {{key}} AS k, pg_catalog.row_number() OVER () AS i FROM changed_rows) s
        GROUP BY (s.i OPERATOR(pg_catalog.-) 1) OPERATOR(pg_catalog./) 1000;
      IF NOT FOUND THEN
        RETURN NULL;
      END IF;
    END IF;
  END IF;
  -- Wake the daemon only when it is idle: an idle daemon holds this lock exclusively. A busy
  -- one does not, and then this transaction holds it shared until it commits, so the daemon
  -- cannot go idle before it has seen this change. Most transactions under load therefore
  -- skip NOTIFY, whose commit-time lock would serialize them. The payload is a wake-up only,
  -- never row data (every database user can LISTEN); identical ones fold within a transaction.
  -- A listener that stopped reading fills PostgreSQL's notification queue, and pg_notify on a
  -- full queue raises an error: past half full, skip the wake-up (the daemon's poll finds the
  -- change) rather than ever fail the application's transaction.
  IF NOT pg_catalog.pg_try_advisory_xact_lock_shared({{wake_lock}})
     AND pg_catalog.pg_notification_queue_usage() OPERATOR(pg_catalog.<) 0.5 THEN
    PERFORM pg_catalog.pg_notify({{channel}}, '{"rel":' OPERATOR(pg_catalog.||) {{rel}} OPERATOR(pg_catalog.||) '}');
  END IF;
  RETURN NULL;
END
{{tag}};
REVOKE ALL ON FUNCTION {{function}}() FROM PUBLIC;

CREATE OR REPLACE TRIGGER {{trigger_insert}} AFTER INSERT ON {{table}}
  REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_update}} AFTER UPDATE ON {{table}}
  REFERENCING {{update_old_rows}}NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}({{update_args}});
CREATE OR REPLACE TRIGGER {{trigger_delete}} AFTER DELETE ON {{table}}
  REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_truncate}} AFTER TRUNCATE ON {{table}}
  FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
{{truncate_start}}CREATE OR REPLACE TRIGGER {{trigger_key_change}} AFTER UPDATE ON {{table}}
  FOR EACH ROW WHEN ({{key_changed}}) EXECUTE FUNCTION {{function}}({{key_change_args}});
{{partitions}}
INSERT INTO {{schema}}.tables (rel, schema_name, table_name, spec, spec_hash)
VALUES ({{table_literal}}::regclass, {{schema_name_literal}}, {{table_name_literal}}, {{spec_literal}}::jsonb, {{hash_literal}})
ON CONFLICT (rel) DO UPDATE SET spec = EXCLUDED.spec, spec_hash = EXCLUDED.spec_hash, installed_at = now(),
  -- keys written under other options must be copied again
  synced_at = CASE WHEN {{schema}}.tables.spec = EXCLUDED.spec THEN {{schema}}.tables.synced_at END;
{{group_meta}}
