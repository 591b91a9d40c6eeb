import { slotOf, type RedisClient } from './cluster.js';
import { FENCE_LUA, type ChangeEvents, type Fence } from './replace.js';

/**
 * One event that is not about one key: a TRUNCATE (its `key` is the table's SCAN pattern).
 * Fenced like every daemon write (see REPLACE_LUA): a daemon that lost its leadership must not
 * announce a TRUNCATE after the new leader has gone on. KEYS[1] fence, KEYS[2] stream (when
 * ARGV[2] is not ''), ARGV: token, MAXLEN, channel, table, op, key.
 */
const EVENT_LUA = `
${FENCE_LUA}if ARGV[2] ~= '' then redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'op', ARGV[5], 'key', ARGV[6]) end
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], cjson.encode({table = ARGV[4], op = ARGV[5], key = ARGV[6]})) end
return 1
`;

/** Announces that every key of the table (those matching `pattern`) was deleted; call it after deleting them. */
export async function announceTruncate(redis: RedisClient, events: ChangeEvents, pattern: string, fence: Fence): Promise<void> {
  const stream = events.stream;
  // Without a fence (key '') KEYS[1] is not read; the stream key, or the channel name, stands in
  // so that the call names no key outside the prefix. In a cluster the fence key is the one in
  // the stream's slot (or the pattern's, for PUBLISH only).
  const streamKey = stream?.key ?? '';
  const fenceKey = fence.keyInSlot === undefined ? fence.key : fence.keyInSlot(slotOf(stream === null ? pattern : streamKey));
  const keys = stream === null ? [fence.key === '' ? pattern : fenceKey] : [fence.key === '' ? streamKey : fenceKey, streamKey];
  await redis.eval(EVENT_LUA, keys.length, ...keys, fence.token, stream === null ? '' : String(stream.maxLen), events.channel ?? '', events.table, 'truncate', pattern);
}
