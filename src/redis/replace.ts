import { createHash } from 'node:crypto';
import { isCluster, keyHolders, slotOf, type RedisClient } from './cluster.js';
import { bulkString, sendEncoded } from './encoded-command.js';

/**
 * What one key must become: a hash (field/value pairs, NULL columns left out), a string
 * (json format), or nothing (the row is gone).
 */
export type KeyWrite =
  | { key: string; hash: string[] }
  /** A hash whose field/value pairs are already RESP bulk strings (see apply-statement). */
  | { key: string; fields: number; encoded: string }
  | { key: string; json: string }
  | { key: string; delete: true };

/**
 * Replaces each key atomically, inside one Lua script, so no reader sees half a row.
 * A hash is overwritten in place with HSET, which is cheaper than DEL and a fresh HSET (the
 * common case: the same fields, new values). A field HSET did not write (a column now NULL, or
 * no longer mirrored) shows as HLEN above the field count; only then is the key deleted and
 * written afresh. HSET on a key of another type (a format change) fails, and is done the same way.
 * KEYS[1] and ARGV[1] are the fence: the daemon state hash and the writer's leader token ('' for
 * writers that are not the daemon). A daemon that lost its leadership may still have writes in
 * flight; once the new leader has raised the token in Redis, they fail here instead of
 * overwriting newer values. Then per key, KEYS[2..] with ARGV: 'h', field count, pairs... |
 * 's', value | 'd'.
 */
const REPLACE_LUA = `
if ARGV[1] ~= '' then
  local leader = redis.call('HGET', KEYS[1], 'leader')
  if leader and tonumber(leader) > tonumber(ARGV[1]) then
    return redis.error_reply('FENCED a newer pg-redis-mirror daemon leads')
  end
end
local a = 2
for i = 2, #KEYS do
  local k = KEYS[i]
  local m = ARGV[a]
  if m == 'h' then
    local n = tonumber(ARGV[a + 1])
    local last = a + 1 + 2 * n
    if n == 0 then
      redis.call('DEL', k)
    else
      local ok = redis.pcall('HSET', k, unpack(ARGV, a + 2, last))
      if type(ok) == 'table' or redis.call('HLEN', k) ~= n then
        redis.call('DEL', k)
        redis.call('HSET', k, unpack(ARGV, a + 2, last))
      end
    end
    a = last + 1
  elseif m == 's' then
    redis.call('SET', k, ARGV[a + 1])
    a = a + 2
  else
    redis.call('DEL', k)
    a = a + 1
  end
end
return #KEYS
`;

const REPLACE_SHA = createHash('sha1').update(REPLACE_LUA).digest('hex');
const EVALSHA_HEAD = bulkString('EVALSHA') + bulkString(REPLACE_SHA);
const HASH = bulkString('h');
const STRING = bulkString('s');
const DELETE = bulkString('d');

/** Keys and bytes per script call: big enough to amortise the call, small enough not to stall Redis. */
const MAX_KEYS_PER_CALL = 500;
const MAX_BYTES_PER_CALL = 4 * 1024 * 1024;
const MAX_ARGS_PER_CALL = 50_000;

/** One script call's RESP text: KEYS and ARGV built side by side. */
interface Call {
  /** The hash slot of every key of the call in a cluster (see writeKeys); null for a standalone server. */
  slot: number | null;
  keys: number;
  args: number;
  bytes: number;
  keyText: string;
  /** Length of the first key's RESP text at the start of keyText. */
  firstKeyLength: number;
  argText: string;
}

/** Where a daemon's leader token lives, and its own token (see REPLACE_LUA). */
export interface Fence {
  key: string;
  token: string;
  /**
   * In a Redis Cluster, a script's keys must all be in one hash slot: the fence key to use
   * for a call whose keys are in `slot` (the daemon raises its token in one per slot, see
   * state.ts). `key` is then used for nothing here.
   */
  keyInSlot?: (slot: number) => string;
}

/**
 * Writers that are not the daemon (sync, verify --repair) are never fenced. Their KEYS[1] is
 * the call's first key again (the script does not read it), so they touch no key outside the
 * mirrored ones (an ACL user limited to the prefix suffices), and it is in the call's slot.
 */
const NO_FENCE: Fence = { key: '', token: '' };

function send(redis: RedisClient, call: Call, fence: Fence): Promise<unknown> {
  const fenceKey =
    fence.key === '' ? call.keyText.slice(0, call.firstKeyLength) : bulkString(call.slot === null ? fence.key : fence.keyInSlot!(call.slot));
  return sendEncoded(
    redis,
    'evalsha',
    5 + call.keys + call.args,
    EVALSHA_HEAD + bulkString(String(call.keys + 1)) + fenceKey + call.keyText + bulkString(fence.token) + call.argText,
    call.slot,
  );
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

function newCall(slot: number | null): Call {
  return { slot, keys: 0, args: 0, bytes: 0, keyText: '', firstKeyLength: 0, argText: '' };
}

/**
 * Writes each key as described (see REPLACE_LUA). The keys must be distinct: calls run in
 * parallel, and a call Redis rejected because its script cache was empty (after a restart) is
 * sent again after loading the script. In a Redis Cluster a call carries the keys of one hash
 * slot only (a script may not touch keys of several), and goes to the master of that slot.
 */
export async function writeKeys(redis: RedisClient, writes: readonly KeyWrite[], fence: Fence = NO_FENCE): Promise<void> {
  if (writes.length === 0) return;
  const cluster = isCluster(redis);
  if (cluster && fence.key !== '' && fence.keyInSlot === undefined) {
    throw new Error('writeKeys: a fence in a Redis Cluster needs a fence key per hash slot (keyInSlot)');
  }
  const calls: Call[] = [];
  // The call being filled, per slot (a standalone server has one, under null).
  const open = new Map<number | null, Call>();
  for (const write of writes) {
    const slot = cluster ? slotOf(write.key) : null;
    let call = open.get(slot);
    if (call === undefined) {
      call = newCall(slot);
      open.set(slot, call);
    }
    call.keys += 1;
    call.keyText += bulkString(write.key);
    if (call.keys === 1) call.firstKeyLength = call.keyText.length;
    call.bytes += write.key.length;
    if ('hash' in write) {
      call.args += 2 + write.hash.length;
      call.argText += HASH + bulkString(String(write.hash.length / 2));
      for (const part of write.hash) {
        call.argText += bulkString(part);
        call.bytes += part.length;
      }
    } else if ('encoded' in write) {
      call.args += 2 + 2 * write.fields;
      call.argText += HASH + bulkString(String(write.fields)) + write.encoded;
      call.bytes += write.encoded.length;
    } else if ('json' in write) {
      call.args += 2;
      call.argText += STRING + bulkString(write.json);
      call.bytes += write.json.length;
    } else {
      call.args += 1;
      call.argText += DELETE;
    }
    if (call.keys >= MAX_KEYS_PER_CALL || call.bytes >= MAX_BYTES_PER_CALL || call.args >= MAX_ARGS_PER_CALL) {
      calls.push(call);
      open.delete(slot);
    }
  }
  calls.push(...open.values());
  const outcomes = await Promise.allSettled(calls.map((c) => send(redis, c, fence)));
  const failed = outcomes.flatMap((outcome, i) => (outcome.status === 'rejected' ? [{ call: calls[i]!, error: outcome.reason as unknown }] : []));
  if (failed.length === 0) return;
  const other = failed.find((f) => !isNoScript(f.error));
  if (other !== undefined) throw other.error;
  // Each server (each master of a cluster) has a script cache of its own.
  await Promise.all(keyHolders(redis).map((node) => node.script('LOAD', REPLACE_LUA)));
  await Promise.all(failed.map((f) => send(redis, f.call, fence)));
}
