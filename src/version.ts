/** Version of the database objects `install` creates; bump it when sql/ changes. */
export const SCHEMA_VERSION = '3';
