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
 * The fence every daemon script starts with: KEYS[1] is the state hash (or a slot's fence key),
 * ARGV[1] the writer's leader token ('' for writers that are not the daemon).
 */
export const FENCE_LUA = `
if ARGV[1] ~= '' then
  local leader = redis.call('HGET', KEYS[1], 'leader')
  if leader and tonumber(leader) > tonumber(ARGV[1]) then
    return redis.error_reply('FENCED a newer pg-redis-mirror daemon leads')
  end
end
`;

/**
 * Replaces each key atomically, inside one Lua script, so no reader sees half a row.
 * A hash is overwritten in place with HSET, which is cheaper than DEL and a fresh HSET (the
 * common case: the same fields, new values). A field HSET did not write (a column now NULL, or
 * no longer mirrored) shows as HLEN above the field count; only then is the key deleted and
 * written afresh. HSET on a key of another type (a format change) fails, and is done the same way.
 * KEYS[1] and ARGV[1] are the fence: the daemon state hash and the writer's leader token ('' for
 * writers that are not the daemon). A daemon that lost its leadership may still have writes in
 * flight; once the new leader has raised the token in Redis, they fail here instead of
 * overwriting newer values.
 * ARGV[2..5] are the table's options (see WriteOptions): TTL in seconds ('' none, '-1' remove
 * any), stream MAXLEN ('' no stream; the stream is then the last of KEYS), PUBLISH channel
 * ('' none), table name (for the published JSON). The TTL and the change events are set in the
 * same call as the key, right after it, so a reader never sees the key without its TTL, and a
 * consumer that reads an event always finds the key already written.
 * Then per key, KEYS[2..] with ARGV: 'h', field count, pairs... | 's', value | 'd'.
 */
const REPLACE_LUA = `
${FENCE_LUA}local ttl, maxlen, channel = ARGV[2], ARGV[3], ARGV[4]
local rows = #KEYS
local stream = nil
if maxlen ~= '' then
  stream = KEYS[rows]
  rows = rows - 1
end
local function event(op, k)
  if stream then redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'op', op, 'key', k) end
  if channel ~= '' then redis.call('PUBLISH', channel, cjson.encode({table = ARGV[5], op = op, key = k})) end
end
local function written(k, fresh)
  if ttl == '-1' then
    if not fresh then redis.call('PERSIST', k) end
  elseif ttl ~= '' then
    redis.call('EXPIRE', k, ttl)
  end
  event('upsert', k)
end
local a = 6
for i = 2, rows do
  local k = KEYS[i]
  local m = ARGV[a]
  if m == 'h' then
    local n = tonumber(ARGV[a + 1])
    local last = a + 1 + 2 * n
    if n == 0 then
      redis.call('DEL', k)
      event('delete', k)
    else
      local added = redis.pcall('HSET', k, unpack(ARGV, a + 2, last))
      local fresh = false
      if type(added) == 'table' or redis.call('HLEN', k) ~= n then
        redis.call('DEL', k)
        redis.call('HSET', k, unpack(ARGV, a + 2, last))
      else
        -- Every field new and no other field: the key did not exist, so it has no TTL to remove.
        fresh = added == n
      end
      written(k, fresh)
    end
    a = last + 1
  elseif m == 's' then
    redis.call('SET', k, ARGV[a + 1])
    -- SET drops any TTL itself.
    written(k, true)
    a = a + 2
  else
    redis.call('DEL', k)
    event('delete', k)
    a = a + 1
  end
end
return rows
`;

const REPLACE_SHA = createHash('sha1').update(REPLACE_LUA).digest('hex');
const EVALSHA_HEAD = bulkString('EVALSHA') + bulkString(REPLACE_SHA);
const HASH = bulkString('h');
const STRING = bulkString('s');
const DELETE = bulkString('d');

/** Keys and bytes per script call: big enough to amortise the call, small enough not to stall Redis. */
export const MAX_KEYS_PER_CALL = 500;
export const MAX_BYTES_PER_CALL = 4 * 1024 * 1024;
export const MAX_ARGS_PER_CALL = 50_000;

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

/** Where a table's changes are announced (the table's `stream` and `publish` options). */
export interface ChangeEvents {
  /** Table name for the published JSON. */
  table: string;
  stream: { key: string; maxLen: number } | null;
  channel: string | null;
}

/** Per-table options applied with each write (see REPLACE_LUA). */
export interface WriteOptions {
  /**
   * Seconds: each key written gets this TTL. 'persist': each key written loses any TTL (a copy
   * of a table whose TTL option was removed). Absent: a TTL already on the key is left as is.
   */
  ttl?: number | 'persist';
  /** Announce each key written or deleted, after it is written, in the same call. */
  events?: ChangeEvents | null;
}

/** ARGV[2..5] and the stream key (appended to KEYS) of every call with these options. */
function optionText(options: WriteOptions): { args: string; streamKey: string } {
  const ttl = options.ttl === undefined ? '' : options.ttl === 'persist' ? '-1' : String(options.ttl);
  const stream = options.events?.stream ?? null;
  return {
    args: bulkString(ttl) + bulkString(stream === null ? '' : String(stream.maxLen)) + bulkString(options.events?.channel ?? '') + bulkString(options.events?.table ?? ''),
    streamKey: stream === null ? '' : bulkString(stream.key),
  };
}

function send(redis: RedisClient, call: Call, fence: Fence, options: { args: string; streamKey: string }): Promise<unknown> {
  const fenceKey =
    fence.key === '' ? call.keyText.slice(0, call.firstKeyLength) : bulkString(call.slot === null ? fence.key : fence.keyInSlot!(call.slot));
  const streamKeys = options.streamKey === '' ? 0 : 1;
  return sendEncoded(
    redis,
    'evalsha',
    9 + streamKeys + call.keys + call.args,
    EVALSHA_HEAD + bulkString(String(call.keys + 1 + streamKeys)) + fenceKey + call.keyText + options.streamKey + bulkString(fence.token) + options.args + call.argText,
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
export async function writeKeys(redis: RedisClient, writes: readonly KeyWrite[], fence: Fence = NO_FENCE, options: WriteOptions = {}): Promise<void> {
  if (writes.length === 0) return;
  const optionArgs = optionText(options);
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
  await sendCalls(redis, calls, fence, optionArgs);
}

/**
 * A script call whose RESP text PostgreSQL built (see daemon/framed-call.ts): `keys` keys,
 * framed in keyText, and `args` arguments for them ('h', count, pairs... | 's', value | 'd'),
 * framed in argText. For a standalone server only (no hash slots).
 */
export interface FramedCall {
  keys: number;
  keyText: string;
  args: number;
  argText: string;
}

/** Sends framed calls as writeKeys sends its own; their keys must be distinct. */
export async function writeFramedCalls(redis: RedisClient, framed: readonly FramedCall[], fence: Fence = NO_FENCE, options: WriteOptions = {}): Promise<void> {
  if (framed.length === 0) return;
  if (isCluster(redis)) throw new Error('writeFramedCalls: framed calls carry no hash slots; a Redis Cluster needs writeKeys');
  const calls = framed.map((f): Call => ({ slot: null, keys: f.keys, args: f.args, bytes: 0, keyText: f.keyText, firstKeyLength: firstBulkStringLength(f.keyText), argText: f.argText }));
  await sendCalls(redis, calls, fence, optionText(options));
}

/** Length, in UTF-16 units of `text`, of the RESP bulk string it starts with. */
function firstBulkStringLength(text: string): number {
  const head = text.indexOf('\r\n');
  const bytes = Number(text.slice(1, head));
  // The N bytes are at most N characters: take those and keep the characters of N bytes.
  const value = Buffer.from(text.slice(head + 2, head + 2 + bytes)).subarray(0, bytes).toString();
  return head + 2 + value.length + 2;
}

async function sendCalls(redis: RedisClient, calls: readonly Call[], fence: Fence, optionArgs: { args: string; streamKey: string }): Promise<void> {
  const outcomes = await Promise.allSettled(calls.map((c) => send(redis, c, fence, optionArgs)));
  const failed = outcomes.flatMap((outcome, i) => (outcome.status === 'rejected' ? [{ call: calls[i]!, error: outcome.reason as unknown }] : []));
  if (failed.length === 0) return;
  const other = failed.find((f) => !isNoScript(f.error));
  if (other !== undefined) throw other.error;
  // Each server (each master of a cluster) has a script cache of its own.
  await Promise.all(keyHolders(redis).map((node) => node.script('LOAD', REPLACE_LUA)));
  await Promise.all(failed.map((f) => send(redis, f.call, fence, optionArgs)));
}
