-- The tool's own schema. No CASCADE: anything else someone put in it stays, and stops the uninstall.
DROP TABLE IF EXISTS {{schema}}.journal;
DROP TABLE IF EXISTS {{schema}}.tables;
DROP TABLE IF EXISTS {{schema}}.meta;
DROP SCHEMA IF EXISTS {{schema}};
