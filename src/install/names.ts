import { createHash } from 'node:crypto';

const MAX_IDENTIFIER_BYTES = 63;

export function shortHash(text: string, length = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** A name PostgreSQL will not truncate: long ones are cut and made unique with a hash. */
export function fitIdentifier(name: string): string {
  if (Buffer.byteLength(name) <= MAX_IDENTIFIER_BYTES) return name;
  const hash = shortHash(name);
  let head = name;
  while (Buffer.byteLength(head) > MAX_IDENTIFIER_BYTES - hash.length - 1) head = head.slice(0, -1);
  return `${head}_${hash}`;
}

/** Capture function of one table, in the tool's schema; readable, and unique per (schema, table). */
export function captureFunctionName(schema: string, table: string): string {
  const slug = `${schema}_${table}`.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 40);
  return `capture_${slug}_${shortHash(JSON.stringify([schema, table]))}`;
}

export interface TriggerNames {
  insert: string;
  update: string;
  delete: string;
  truncate: string;
  keyChange: string;
}

/** Trigger names on a mirrored table, prefixed with the tool's schema so two installs never clash. */
export function triggerNames(toolSchema: string): TriggerNames {
  return {
    insert: fitIdentifier(`${toolSchema}_insert`),
    update: fitIdentifier(`${toolSchema}_update`),
    delete: fitIdentifier(`${toolSchema}_delete`),
    truncate: fitIdentifier(`${toolSchema}_truncate`),
    keyChange: fitIdentifier(`${toolSchema}_key_change`),
  };
}

/**
 * A partitioned table's own BEFORE TRUNCATE trigger: it tells its partitions' triggers, which
 * fire next, that the whole table goes (see sql/table.sql). Not among TriggerNames: a plain
 * table has none, and without it a partition's keys are still journaled, only one by one.
 */
export function truncateStartTriggerName(toolSchema: string): string {
  return fitIdentifier(`${toolSchema}_truncate_start`);
}

/** The default group keeps the keys it had before groups existed. */
function lockKey(kind: number, toolSchema: string, group = 'default'): [number, number] {
  const scope = group === 'default' ? toolSchema : `${toolSchema}\u0000${group}`;
  const hash = createHash('sha256').update(`pg-redis-mirror:${scope}`).digest();
  return [kind, hash.readInt32BE(0)];
}

/** pg_advisory_xact_lock(int, int) key: install/uninstall of one schema serialize. */
export function installLockKey(toolSchema: string): [number, number] {
  return lockKey(0x70726d, toolSchema);
}

/**
 * Writers of Redis take this lock: each daemon batch shared, each `sync`/`verify --repair`
 * chunk exclusive. A copy that read a row before a change must not write it after the daemon
 * applied that change, so the two never interleave; the daemon then re-applies everything
 * journaled meanwhile, on top of the copy.
 */
export function applyLockKey(toolSchema: string): [number, number] {
  return lockKey(0x70726e, toolSchema);
}

/**
 * Held exclusively by an idle daemon (session level); capture functions probe it shared to
 * decide whether a NOTIFY is needed (see sql/table.sql).
 */
export function wakeLockKey(toolSchema: string, group?: string): [number, number] {
  return lockKey(0x70726f, toolSchema, group);
}

/** Session-level lock held by the daemon that leads (applies changes); the others wait for it. */
export function leaderLockKey(toolSchema: string, group?: string): [number, number] {
  return lockKey(0x707270, toolSchema, group);
}
