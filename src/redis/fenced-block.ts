import type { CommandLayout } from '../daemon/framed-commands.js';
import { shiftChecks } from '../daemon/framed-commands.js';
import { command, NO_CHECKS, RedisPipeError, type Reply, type RespPipe } from './pipe.js';
import type { Fence } from './replace.js';

/**
 * The daemon's writes as plain commands inside MULTI ... EXEC rather than a Lua script: the
 * same keys cost Redis ~40% less CPU (HSET, HLEN, EXPIRE queued and run, against a script
 * reading its arguments and calling each of them).
 *
 * The fence (see FENCE_LUA in replace.ts) becomes WATCH: a transaction is sent only while the
 * state hash is WATCHed on the pipe and its leader token, read after the WATCH, was not
 * newer than ours. A newer leader raising it after that changes the watched hash, and EXEC
 * runs nothing. EXEC ends the WATCH, so right behind each transaction the pipe WATCHes and
 * reads the token again, for the next one: a block costs one round trip, as a script call
 * does, however long the daemon then stays idle.
 */

/** One block of a batch: its keys' commands (framed by PostgreSQL), and what they are. */
export interface CommandBlock {
  text: string;
  layout: CommandLayout;
}

/** A block that deletes `keys` (a TRUNCATE's). */
export function deleteBlock(keys: readonly string[]): CommandBlock {
  return { text: command('DEL', ...keys), layout: { keys: keys.length, commands: 1, checks: NO_CHECKS } };
}

/** EXECs that may find the state hash changed (the epoch written, say) before the block is given up. */
const ATTEMPTS = 5;

/** Per pipe, the fence (key and token) its standing WATCH was checked for. */
const watching = new WeakMap<RespPipe, string>();

/**
 * Writes the block in one transaction, fenced. A key its commands did not replace whole (a
 * field of no mirrored column, a key of another type: see framed-commands.ts) shows in the
 * replies; the block is then written again, each key deleted first, in a second transaction.
 */
export async function writeBlock(pipe: RespPipe, block: CommandBlock, fence: Fence): Promise<void> {
  const id = `${fence.key}\n${fence.token}`;
  let text = block.text;
  let commands = block.layout.commands;
  let checks = block.layout.checks;
  let whole = false;
  for (let attempt = 1; ; attempt++) {
    if (watching.get(pipe) !== id) await watchFence(pipe, fence);
    watching.delete(pipe);
    // The WATCH for the next block goes out with this one: under steady writes a batch is a
    // block or two, and a system call of its own was a sizeable part of the daemon's CPU.
    const [sent, rewatched] = pipe.together(() => [
      pipe.transaction(text, { commands, checks }),
      watchFence(pipe, fence).then(
        () => watching.set(pipe, id),
        // A newer leader, or the pipe gone: the next block checks again, and says so.
        () => undefined,
      ),
    ] as const);
    const tally = await sent;
    await rewatched;
    if (tally.aborted) {
      if (attempt < ATTEMPTS) continue;
      throw new RedisPipeError(`the daemon's state hash ${fence.key} changed during ${ATTEMPTS} tries to write a batch`);
    }
    if (tally.errors === 0 && tally.mismatches === 0) return;
    if (whole) {
      throw new RedisPipeError(`Redis refused a write: ${tally.errorTexts[0] ?? 'a key still holds a field of no mirrored column'}`);
    }
    whole = true;
    text = command('DEL', ...keysOf(block.text)) + block.text;
    commands += 1;
    checks = shiftChecks(checks, 1);
  }
}

/** WATCHes the state hash and refuses to go on if a newer leader's token is in it. */
async function watchFence(pipe: RespPipe, fence: Fence): Promise<void> {
  const [watched, leader] = await pipe.request(command('WATCH', fence.key) + command('HGET', fence.key, 'leader'), 2);
  for (const reply of [watched, leader]) if (isError(reply)) throw new RedisPipeError(`Redis refused the fence check: ${reply.error}`);
  if (typeof leader !== 'string') return;
  if (!/^\d+$/.test(leader)) throw new RedisPipeError(`the leader token in ${fence.key} is not a number: ${leader}`);
  if (BigInt(leader) > BigInt(fence.token)) {
    await pipe.request(command('UNWATCH'), 1);
    throw new RedisPipeError('FENCED a newer pg-redis-mirror daemon leads');
  }
}

/**
 * The keys a block writes, in order: the first argument of each of its commands (a key's
 * commands follow each other). Parsed from the block's text, which only this rare path needs.
 */
export function keysOf(text: string): string[] {
  const bytes = Buffer.from(text);
  const keys: string[] = [];
  let at = 0;
  const line = (): number => {
    const end = bytes.indexOf('\r\n', at);
    const value = Number(bytes.toString('latin1', at + 1, end));
    at = end + 2;
    return value;
  };
  while (at < bytes.length) {
    const args = line();
    for (let i = 0; i < args; i++) {
      const length = line();
      if (i === 1) {
        const key = bytes.toString('utf8', at, at + length);
        if (keys[keys.length - 1] !== key) keys.push(key);
      }
      at += length + 2;
    }
  }
  return keys;
}

function isError(reply: Reply | undefined): reply is { error: string } {
  return typeof reply === 'object' && reply !== null;
}
