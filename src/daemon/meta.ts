import type pg from 'pg';
import { UserError } from '../errors.js';
import { quoteIdent } from '../sql/quote.js';

/** What the daemon keeps in the install's meta table (see sql/schema.sql). */
export interface DaemonMeta {
  installId: string;
  /** Generation of the data in Redis; null until a daemon first led. */
  redisEpoch: string | null;
  /** A re-copy after Redis lost its data is under way (survives daemon restarts). */
  recopy: boolean;
}

export async function readMeta(client: pg.ClientBase, toolSchema: string): Promise<DaemonMeta> {
  const result = await client.query<{ key: string; value: string }>(`SELECT key, value FROM ${quoteIdent(toolSchema)}.meta`);
  const meta = new Map(result.rows.map((r) => [r.key, r.value]));
  const installId = meta.get('install_id');
  if (installId === undefined || !meta.has('leader_epoch')) {
    throw new UserError(`the install in schema "${toolSchema}" is from an older pg-redis-mirror; run \`pg-redis-mirror install\` again to upgrade it`);
  }
  const redisEpoch = meta.get('redis_epoch');
  return { installId, redisEpoch: redisEpoch === undefined || redisEpoch === '' ? null : redisEpoch, recopy: meta.get('recopy') === 'true' };
}

/**
 * A new fencing token for a daemon that just became leader: above every earlier one, including
 * `seen` (the token in Redis, which may come from a restored backup of this database).
 */
export async function nextLeaderToken(client: pg.ClientBase, toolSchema: string, seen: string | null): Promise<string> {
  const result = await client.query<{ value: string }>(
    `UPDATE ${quoteIdent(toolSchema)}.meta SET value = greatest(value::bigint, $1::bigint)::bigint + 1 || '' WHERE key = 'leader_epoch' RETURNING value`,
    [seen ?? '0'],
  );
  const token = result.rows[0]?.value;
  if (token === undefined) throw new UserError(`schema "${toolSchema}" has no leader_epoch; run \`pg-redis-mirror install\` again to upgrade it`);
  return token;
}

async function setMeta(client: pg.ClientBase, toolSchema: string, key: string, value: string): Promise<void> {
  await client.query(`UPDATE ${quoteIdent(toolSchema)}.meta SET value = $2 WHERE key = $1`, [key, value]);
}

export function recordEpoch(client: pg.ClientBase, toolSchema: string, epoch: string): Promise<void> {
  return setMeta(client, toolSchema, 'redis_epoch', epoch);
}

/**
 * Redis lost the mirror: every table must be copied again. One transaction, so a daemon that
 * dies half-way still finds the re-copy to do when it (or a standby) leads next.
 */
export async function startRecopy(client: pg.ClientBase, toolSchema: string, epoch: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`UPDATE ${quoteIdent(toolSchema)}.tables SET synced_at = NULL`);
    await setMeta(client, toolSchema, 'redis_epoch', epoch);
    await setMeta(client, toolSchema, 'recopy', 'true');
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

export function finishRecopy(client: pg.ClientBase, toolSchema: string): Promise<void> {
  return setMeta(client, toolSchema, 'recopy', 'false');
}
