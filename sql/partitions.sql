-- The partitions: a statement made straight to a partition fires its own statement triggers,
-- not the table's. Their arguments: 'partition', the table's OID (see sql/table.sql). They are looked up here, under the table's lock, so that none created
-- meanwhile is missed (the key-change row trigger above is cloned to each by PostgreSQL).
-- A leaf journals the keys a TRUNCATE removes; a partitioned partition leaves that to its leaves.
-- Triggers of this function on tables that are no longer partitions of it (detached) go.
DO {{tag}}
DECLARE
  p record;
  root pg_catalog.regclass := {{table_literal}}::pg_catalog.regclass;
  fn pg_catalog.regprocedure := {{signature_literal}}::pg_catalog.regprocedure;
BEGIN
  FOR p IN
    SELECT tg.tgname, tg.tgrelid::pg_catalog.regclass AS rel
    FROM pg_catalog.pg_trigger tg
    WHERE tg.tgfoid OPERATOR(pg_catalog.=) fn AND tg.tgparentid OPERATOR(pg_catalog.=) 0
      AND tg.tgrelid OPERATOR(pg_catalog.<>) ALL (SELECT t.relid FROM pg_catalog.pg_partition_tree(root) t)
  LOOP
    EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', p.tgname, p.rel);
  END LOOP;
  FOR p IN
    SELECT t.relid AS rel, c.relkind
    FROM pg_catalog.pg_partition_tree(root) t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
    WHERE t.level OPERATOR(pg_catalog.>) 0 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[])
    ORDER BY t.level, t.relid
  LOOP
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS changed_rows '
      'FOR EACH STATEMENT EXECUTE FUNCTION %s(''partition'', %L)', {{insert_literal}}, p.rel, {{function_literal}}, root::pg_catalog.oid);
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER %I AFTER UPDATE ON %s REFERENCING %s NEW TABLE AS changed_rows '
      'FOR EACH STATEMENT EXECUTE FUNCTION %s(''partition'', %L%s)', {{update_literal}}, p.rel,
      CASE WHEN p.relkind OPERATOR(pg_catalog.=) 'p' THEN 'OLD TABLE AS old_rows' ELSE '' END, {{function_literal}}, root::pg_catalog.oid,
      CASE WHEN p.relkind OPERATOR(pg_catalog.=) 'p' THEN ', ''moves''' ELSE '' END);
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS changed_rows '
      'FOR EACH STATEMENT EXECUTE FUNCTION %s(''partition'', %L)', {{delete_literal}}, p.rel, {{function_literal}}, root::pg_catalog.oid);
    IF p.relkind OPERATOR(pg_catalog.=) 'r' THEN
      EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION %s(''partition'', %L)', {{truncate_literal}}, p.rel, {{function_literal}}, root::pg_catalog.oid);
    END IF;
  END LOOP;
END
{{tag}};
