import { Command, type Redis } from 'ioredis';

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
  ) {
    super(name, []);
  }

  override toWritable(): string {
    return this.text;
  }
}

/** Sends a command built from RESP bulk strings (see bulkString): `argCount` of them, the name included, in `body`. */
export function sendEncoded(redis: Redis, name: string, argCount: number, body: string): Promise<unknown> {
  const command = new EncodedCommand(name, `*${argCount}\r\n${body}`);
  return redis.sendCommand(command) as Promise<unknown>;
}
