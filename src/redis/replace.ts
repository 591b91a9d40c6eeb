import type { Redis } from 'ioredis';

/**
 * What one key must become: a hash (field/value pairs, NULL columns left out), a string
 * (json format), or nothing (the row is gone).
 */
export type KeyWrite =
  | { key: string; hash: string[] }
  | { key: string; json: string }
  | { key: string; delete: true };

/**
 * Replaces each key atomically: DEL then HSET inside one Lua script, so no reader sees half a
 * row or a field left from an older version (plain HSET would keep a column set to NULL).
 * ARGV per key: 'h', field count, pairs... | 's', value | 'd'.
 */
const REPLACE_LUA = `
local a = 1
for i = 1, #KEYS do
  local m = ARGV[a]
  if m == 'h' then
    local n = tonumber(ARGV[a + 1])
    redis.call('DEL', KEYS[i])
    if n > 0 then
      redis.call('HSET', KEYS[i], unpack(ARGV, a + 2, a + 1 + 2 * n))
    end
    a = a + 2 + 2 * n
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
const MAX_ARGS_PER_CALL = 50_000;

export function defineReplace(redis: Redis): Redis & ReplaceCommand {
  if (!('prmReplace' in redis)) redis.defineCommand('prmReplace', { lua: REPLACE_LUA });
  return redis as Redis & ReplaceCommand;
}

export async function writeKeys(redis: Redis, writes: readonly KeyWrite[]): Promise<void> {
  if (writes.length === 0) return;
  const client = defineReplace(redis);
  const calls: Promise<number>[] = [];
  let keys: string[] = [];
  let args: string[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (keys.length === 0) return;
    calls.push(client.prmReplace([String(keys.length)].concat(keys, args)));
    keys = [];
    args = [];
    bytes = 0;
  };
  for (const write of writes) {
    keys.push(write.key);
    bytes += write.key.length;
    if ('hash' in write) {
      args.push('h', String(write.hash.length / 2));
      for (const part of write.hash) {
        args.push(part);
        bytes += part.length;
      }
    } else if ('json' in write) {
      args.push('s', write.json);
      bytes += write.json.length;
    } else {
      args.push('d');
    }
    if (keys.length >= MAX_KEYS_PER_CALL || bytes >= MAX_BYTES_PER_CALL || args.length >= MAX_ARGS_PER_CALL) flush();
  }
  flush();
  await Promise.all(calls);
}
