import type pg from 'pg';
import { DEFAULT_GROUP } from '../config/load.js';
import { UserError } from '../errors.js';
import { quoteIdent } from '../sql/quote.js';

/** Whose state: an install (its schema) and one daemon group in it. */
export interface MetaScope {
  schema: string;
  group: string;
}

/** What the daemon keeps in the install's meta table (see sql/schema.sql and sql/table.sql). */
export interface DaemonMeta {
  installId: string;
  /** Generation of the group's data in Redis; null until a daemon of the group first led. */
  redisEpoch: string | null;
  /** A re-copy after Redis lost its data is under way (survives daemon restarts). */
  recopy: boolean;
}

/** The default group's rows have the names they had before groups existed. */
function metaKey(name: string, group: string): string {
  return group === DEFAULT_GROUP ? name : `${name}:${group}`;
}

export async function readMeta(client: pg.ClientBase, scope: MetaScope): Promise<DaemonMeta> {
  const result = await client.query<{ key: string; value: string }>(`SELECT key, value FROM ${quoteIdent(scope.schema)}.meta`);
  const meta = new Map(result.rows.map((r) => [r.key, r.value]));
  const installId = meta.get('install_id');
  if (installId === undefined || !meta.has('leader_epoch')) {
    throw new UserError(`the install in schema "${scope.schema}" is from an older pg-redis-mirror; run \`pg-redis-mirror install\` again to upgrade it`);
  }
  if (!meta.has(metaKey('leader_epoch', scope.group))) {
    throw new UserError(`no mirrored table is in group "${scope.group}"; set "group" on tables in the config and run \`pg-redis-mirror install\`, or drop --group`);
  }
  const redisEpoch = meta.get(metaKey('redis_epoch', scope.group));
  return {
    installId,
    redisEpoch: redisEpoch === undefined || redisEpoch === '' ? null : redisEpoch,
    recopy: meta.get(metaKey('recopy', scope.group)) === 'true',
  };
}

/**
 * A new fencing token for a daemon that just became leader: above every earlier one, including
 * `seen` (the token in Redis, which may come from a restored backup of this database).
 */
export async function nextLeaderToken(client: pg.ClientBase, scope: MetaScope, seen: string | null): Promise<string> {
  const result = await client.query<{ value: string }>(
    `UPDATE ${quoteIdent(scope.schema)}.meta SET value = greatest(value::bigint, $1::bigint)::bigint + 1 || '' WHERE key = $2 RETURNING value`,
    [seen ?? '0', metaKey('leader_epoch', scope.group)],
  );
  const token = result.rows[0]?.value;
  if (token === undefined) throw new UserError(`schema "${scope.schema}" has no leader_epoch; run \`pg-redis-mirror install\` again to upgrade it`);
  return token;
}

async function setMeta(client: pg.ClientBase, scope: MetaScope, name: string, value: string): Promise<void> {
  await client.query(`UPDATE ${quoteIdent(scope.schema)}.meta SET value = $2 WHERE key = $1`, [metaKey(name, scope.group), value]);
}

export function recordEpoch(client: pg.ClientBase, scope: MetaScope, epoch: string): Promise<void> {
  return setMeta(client, scope, 'redis_epoch', epoch);
}

/**
 * Redis lost the group's mirror: each of its tables must be copied again. One transaction, so
 * a daemon that dies half-way still finds the re-copy to do when it (or a standby) leads next.
 */
export async function startRecopy(client: pg.ClientBase, scope: MetaScope, epoch: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`UPDATE ${quoteIdent(scope.schema)}.tables SET synced_at = NULL WHERE coalesce(spec->>'group', $1) = $2`, [DEFAULT_GROUP, scope.group]);
    await setMeta(client, scope, 'redis_epoch', epoch);
    await setMeta(client, scope, 'recopy', 'true');
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export function finishRecopy(client: pg.ClientBase, scope: MetaScope): Promise<void> {
  return setMeta(client, scope, 'recopy', 'false');
}
