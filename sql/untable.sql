-- {{display}}: stop mirroring.
{{drop_triggers}}-- The function's triggers anywhere else: on the table's partitions, and on tables detached from it.
DO {{tag}}
DECLARE
  t record;
BEGIN
  FOR t IN
    SELECT tg.tgname, tg.tgrelid::pg_catalog.regclass AS rel
    FROM pg_catalog.pg_trigger tg
    WHERE tg.tgfoid OPERATOR(pg_catalog.=) pg_catalog.to_regprocedure({{signature_literal}}) AND tg.tgparentid OPERATOR(pg_catalog.=) 0
  LOOP
    EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
  END LOOP;
END
{{tag}};
DROP FUNCTION IF EXISTS {{function}}();
DELETE FROM {{schema}}.journal WHERE rel = {{oid}};
DELETE FROM {{schema}}.tables WHERE schema_name = {{schema_name_literal}} AND table_name = {{table_name_literal}};
