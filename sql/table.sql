-- {{display}}: capture changed keys into the journal.
-- SECURITY DEFINER: application roles need no privileges on the tool's schema, and cannot
-- write journal entries except through these triggers.
CREATE OR REPLACE FUNCTION {{function}}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp{{settings}}
AS {{tag}}
BEGIN
  IF TG_LEVEL = 'ROW' THEN
    -- Fires only for rows whose key changed: the old key must leave Redis.
    PERFORM {{schema}}.enqueue(TG_RELID, ARRAY[{{old_key}}]);
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM {{schema}}.enqueue(TG_RELID, (SELECT array_agg({{key}}) FROM old_rows));
  ELSIF TG_OP = 'TRUNCATE' THEN
    PERFORM {{schema}}.enqueue_truncate(TG_RELID);
  ELSE
    PERFORM {{schema}}.enqueue(TG_RELID, (SELECT array_agg({{key}}) FROM new_rows));
  END IF;
  RETURN NULL;
END
{{tag}};
REVOKE ALL ON FUNCTION {{function}}() FROM PUBLIC;

CREATE OR REPLACE TRIGGER {{trigger_insert}} AFTER INSERT ON {{table}}
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_update}} AFTER UPDATE ON {{table}}
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_delete}} AFTER DELETE ON {{table}}
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_truncate}} AFTER TRUNCATE ON {{table}}
  FOR EACH STATEMENT EXECUTE FUNCTION {{function}}();
CREATE OR REPLACE TRIGGER {{trigger_key_change}} AFTER UPDATE ON {{table}}
  FOR EACH ROW WHEN ({{key_changed}}) EXECUTE FUNCTION {{function}}();

INSERT INTO {{schema}}.tables (rel, schema_name, table_name, spec, spec_hash)
VALUES ({{table_literal}}::regclass, {{schema_name_literal}}, {{table_name_literal}}, {{spec_literal}}::jsonb, {{hash_literal}})
ON CONFLICT (rel) DO UPDATE SET spec = EXCLUDED.spec, spec_hash = EXCLUDED.spec_hash, installed_at = now(),
  -- keys written under other options must be copied again
  synced_at = CASE WHEN {{schema}}.tables.spec_hash = EXCLUDED.spec_hash THEN {{schema}}.tables.synced_at END;
