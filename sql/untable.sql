-- {{display}}: stop mirroring.
{{drop_triggers}}DROP FUNCTION IF EXISTS {{function}}();
DELETE FROM {{schema}}.journal WHERE rel = {{oid}};
DELETE FROM {{schema}}.tables WHERE schema_name = {{schema_name_literal}} AND table_name = {{table_name_literal}};
