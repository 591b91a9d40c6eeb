-- {{display}}: capture changed keys into the journal.
-- SECURITY DEFINER: application roles need no privileges on the tool's schema, and cannot
-- write journal entries except through these triggers.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp{{settings}}
AS {{tag}}
BEGIN
  -- One journal row per statement (per 1000 keys): the common small statement costs a single
  -- INSERT ... SELECT; a bigger one fails its HAVING and takes the chunked path instead. The
  -- LIMIT stops that first look at 1001 rows: a big statement's transition table (spilled to
  -- disk past work_mem) is then read once, not twice.
  IF TG_LEVEL = 'ROW' THEN
    -- Fires only for rows whose key changed: the old key must leave Redis.
    INSERT INTO {{schema}}.journal (rel, keys) VALUES (TG_RELID, ARRAY[{{old_key}}]);
  ELSIF TG_OP = 'TRUNCATE' THEN
    INSERT INTO {{schema}}.journal (rel, op) VALUES (TG_RELID, 't');
  ELSE
    -- changed_rows: the new rows of an INSERT or UPDATE, the old rows of a DELETE.
    INSERT INTO {{schema}}.journal (rel, keys)
      SELECT TG_RELID, array_agg({{key}}) FROM (SELECT * FROM changed_rows LIMIT 1001) changed_rows HAVING count(*) BETWEEN 1 AND 1000;
    IF NOT FOUND THEN
      INSERT INTO {{schema}}.journal (rel, keys)
        SELECT TG_RELID, array_agg(k) FROM (SELECT {{key}} AS k, row_number() OVER () - 1 AS i FROM changed_rows) s GROUP BY i / 1000;
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
  IF NOT pg_try_advisory_xact_lock_shared({{wake_lock}}) AND pg_notification_queue_usage() < 0.5 THEN
    PERFORM pg_notify({{channel}}, '{"rel":' || TG_RELID || '}');
  END IF;
  RETURN NULL;
END
{{tag}};
REVOKE ALL ON FUNCTION {{function}}() FROM PUBLIC;

CREATE OR REPLACE TRIGGER {{trigger_insert}} AFTER INSERT ON {{table}}
  REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_update}} AFTER UPDATE ON {{table}}
  REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_delete}} AFTER DELETE ON {{table}}
  REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_truncate}} AFTER TRUNCATE ON {{table}}
  FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_key_change}} AFTER UPDATE ON {{table}}
  FOR EACH ROW WHEN ({{key_changed}}) EXECUTE FUNCTION {{function}}();

INSERT INTO {{schema}}.tables (rel, schema_name, table_name, spec, spec_hash)
VALUES ({{table_literal}}::regclass, {{schema_name_literal}}, {{table_name_literal}}, {{spec_literal}}::jsonb, {{hash_literal}})
ON CONFLICT (rel) DO UPDATE SET spec = EXCLUDED.spec, spec_hash = EXCLUDED.spec_hash, installed_at = now(),
  -- keys written under other options must be copied again
  synced_at = CASE WHEN {{schema}}.tables.spec = EXCLUDED.spec THEN {{schema}}.tables.synced_at END;
{{group_meta}}
