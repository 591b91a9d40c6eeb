import { Command } from 'ioredis';
import type { RedisClient } from './cluster.js';

/** One RESP bulk string; its length is in bytes of the UTF-8 the socket sends. */
export function bulkString(value: string): string {
  return `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
}

/**
 * A command whose RESP text was built by the caller. For a script call with thousands of
 * arguments, ioredis' own argument handling (flattening and converting each one) costs the
 * daemon more CPU than building the text as the arguments are produced.
 */
class EncodedCommand extends Command {
  constructor(
    name: string,
    private readonly text: string,
    private readonly keySlot: number | null,
  ) {
    super(name, []);
  }

  /** ioredis finds a command's slot from its arguments, which this command keeps as text: the caller names it. */
  override getSlot(): number {
    // Typed number by ioredis, but null (no key) is what it handles as "any node".
    return this.keySlot as number;
  }

  override toWritable(): string {
    return this.text;
  }
}

/**
 * Sends a command built from RESP bulk strings (see bulkString): `argCount` of them, the name
 * included, in `body`. In a cluster it goes to the master of `slot`, the hash slot of its keys.
 */
export function sendEncoded(redis: RedisClient, name: string, argCount: number, body: string, slot: number | null = null): Promise<unknown> {
  const command = new EncodedCommand(name, `*${argCount}\r\n${body}`, slot);
  return redis.sendCommand(command) as Promise<unknown>;
}
