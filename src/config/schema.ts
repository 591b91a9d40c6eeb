import { z } from 'zod';

const identifier = z.string().min(1, 'must not be empty').refine((s) => !s.includes('\u0000'), 'must not contain NUL');

export const tableConfigSchema = z.strictObject({
  /** `schema.table` or `table` (schema public); quote parts that contain dots. */
  table: z.string().min(1, 'must not be empty').optional(),
  /** Alternative to `table` for names that are awkward to quote. */
  schema: identifier.optional(),
  name: identifier.optional(),
  /** Key columns for a table without a primary key: must be unique and NOT NULL. */
  key: z.array(identifier).min(1, 'must name at least one column').optional(),
  /** Only these columns are mirrored (and read). */
  columns: z.array(identifier).min(1, 'must name at least one column').optional(),
  /** All columns but these are mirrored; an excluded column is never read. */
  exclude: z.array(identifier).optional(),
  /** `hash`: one field per column; `json`: one string from PostgreSQL's to_jsonb. */
  format: z.enum(['hash', 'json']).optional(),
  /** Key layout after the prefix, e.g. `user:{id}`; every key column must appear once. */
  keyTemplate: z.string().min(1).optional(),
  /** Overrides the global prefix for this table. */
  prefix: z.string().optional(),
  /** The daemon group that applies this table's changes (`listen --group`); default "default". */
  group: z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/, 'must be 1-40 letters, digits, "_", "." or "-"').optional(),
  /** Seconds: every key written gets this TTL (set again by each write), in the same script call. */
  ttl: z
    .number()
    .int('must be a whole number of seconds')
    .min(1, 'must be a positive number of seconds')
    .max(2 ** 31 - 1, 'must be at most 2147483647 seconds')
    .optional(),
  /** Append each applied change to the Redis stream `<prefix>changes:<schema>.<table>`, trimmed to about maxLen entries. */
  stream: z
    .strictObject({ maxLen: z.number().int('must be a whole number').min(1, 'must be at least 1').optional() })
    .optional(),
  /** PUBLISH each applied change, as a small JSON object, on this channel. */
  publish: z.string().min(1, 'must not be empty').optional(),
  /** Only rows for which this SQL boolean expression over the table's columns is true are mirrored; checked by PostgreSQL at install. */
  filter: z.string().trim().min(1, 'must not be empty').refine((s) => !s.includes('\u0000'), 'must not contain NUL').optional(),
});

export const configFileSchema = z.strictObject({
  databaseUrl: z.string().min(1).optional(),
  redisUrl: z.string().min(1).optional(),
  /** The Redis URL names seed nodes of a Redis Cluster (as redis+cluster:// / rediss+cluster:// would). */
  cluster: z.boolean().optional(),
  /** PostgreSQL schema that holds the journal, registry and trigger functions; also the NOTIFY channel. */
  schema: identifier.optional(),
  /** Prepended to every Redis key. */
  prefix: z.string().optional(),
  /** Changed keys applied per batch. */
  batchSize: z.number().int().min(1).max(100_000).optional(),
  /** Safety poll of the journal, in milliseconds (NOTIFY is only a wake-up). */
  pollIntervalMs: z.number().int().min(10).optional(),
  /** `listen` serves /metrics and /healthz on this port (none when absent). */
  metricsPort: z.number().int().min(0).max(65535).optional(),
  /** Interface for the metrics port; default all. */
  metricsHost: z.string().min(1).optional(),
  tables: z.array(z.union([z.string().min(1), tableConfigSchema])).optional(),
});

export type TableConfigInput = z.infer<typeof tableConfigSchema>;
export type ConfigFile = z.infer<typeof configFileSchema>;
