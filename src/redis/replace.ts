import type { Redis } from 'ioredis';

/**
 * What one key must become: a hash (`values`: a JSON array of the row's values in the order
 * of the call's columns, null for NULL, which leaves the field out), a string (json format),
 * or nothing (the row is gone). One JSON string per row keeps the Node side to a single
 * argument per row, however many columns; Redis' cjson unpacks it.
 */
export type KeyWrite =
  | { key: string; values: string }
  | { key: string; json: string }
  | { key: string; delete: true };

/**
 * Replaces each key atomically: DEL then HSET inside one Lua script, so no reader sees half a
 * row or a field left from an older version (plain HSET would keep a column set to NULL).
 * ARGV[1]: JSON array of the column names; then per key: 'v', values | 's', value | 'd'.
 */
const REPLACE_LUA = `
local cols = cjson.decode(ARGV[1])
local a = 2
for i = 1, #KEYS do
  local m = ARGV[a]
  if m == 'v' then
    local vals = cjson.decode(ARGV[a + 1])
    redis.call('DEL', KEYS[i])
    local args = {}
    for j = 1, #cols do
      local v = vals[j]
      if v ~= cjson.null then
        args[#args + 1] = cols[j]
        args[#args + 1] = v
      end
    end
    if #args > 0 then
      redis.call('HSET', KEYS[i], unpack(args))
    end
    a = a + 2
  elseif m == 's' then
    redis.call('SET', KEYS[i], ARGV[a + 1])
    a = a + 2
  else
    redis.call('DEL', KEYS[i])
    a = a + 1
  end
end
return #KEYS
`;

interface ReplaceCommand {
  prmReplace(args: string[]): Promise<number>;
}

/** Keys and bytes per script call: big enough to amortise the call, small enough not to stall Redis. */
const MAX_KEYS_PER_CALL = 500;
const MAX_BYTES_PER_CALL = 4 * 1024 * 1024;

export function defineReplace(redis: Redis): Redis & ReplaceCommand {
  if (!('prmReplace' in redis)) redis.defineCommand('prmReplace', { lua: REPLACE_LUA });
  return redis as Redis & ReplaceCommand;
}

/** Writes the keys of one table; `columns` names the fields of `values` writes. */
export async function writeKeys(redis: Redis, writes: readonly KeyWrite[], columns: readonly string[] = []): Promise<void> {
  if (writes.length === 0) return;
  const client = defineReplace(redis);
  const header = JSON.stringify(columns);
  const calls: Promise<number>[] = [];
  let keys: string[] = [];
  let args: string[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (keys.length === 0) return;
    calls.push(client.prmReplace([String(keys.length)].concat(keys, header, args)));
    keys = [];
    args = [];
    bytes = 0;
  };
  for (const write of writes) {
    keys.push(write.key);
    if ('values' in write) {
      args.push('v', write.values);
      bytes += write.values.length;
    } else if ('json' in write) {
      args.push('s', write.json);
      bytes += write.json.length;
    } else {
      args.push('d');
    }
    if (keys.length >= MAX_KEYS_PER_CALL || bytes >= MAX_BYTES_PER_CALL) flush();
  }
  flush();
  await Promise.all(calls);
}
