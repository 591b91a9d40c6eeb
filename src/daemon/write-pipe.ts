import type { RedisClient } from '../redis/cluster.js';
import { command, RedisPipeError, RespPipe } from '../redis/pipe.js';

/**
 * The daemon's own connection for MULTI ... EXEC writes (see redis/fenced-block.ts), opened
 * when first needed and again after it failed (Redis restarted, the network dropped): the
 * batch that saw it fail is rolled back and retried as any other.
 */
export class WritePipe {
  private pipe: RespPipe | undefined;

  constructor(private readonly redis: RedisClient) {}

  /**
   * Whether the daemon can write through a pipe: a standalone server the pipe reaches, and a
   * Redis user allowed WATCH, MULTI and EXEC on the state hash (an ACL without @transaction
   * is not). Otherwise the daemon writes through Lua scripts, as before pipes.
   */
  async usable(stateKey: string): Promise<{ usable: boolean; reason?: string }> {
    if (!RespPipe.supports(this.redis)) return { usable: false };
    let pipe: RespPipe;
    try {
      pipe = await this.get();
    } catch (error) {
      return { usable: false, reason: error instanceof Error ? error.message : String(error) };
    }
    const replies = await pipe.request(command('WATCH', stateKey) + command('UNWATCH'), 2);
    const transaction = await pipe.transaction('', { commands: 0 });
    const refused = [...replies.flatMap((r) => (typeof r === 'object' && r !== null ? [r.error] : [])), ...transaction.errorTexts];
    return refused.length === 0 ? { usable: true } : { usable: false, reason: refused[0]! };
  }

  async get(): Promise<RespPipe> {
    if (this.pipe !== undefined && !this.pipe.closed) return this.pipe;
    this.pipe = undefined;
    const pipe = await RespPipe.open(this.redis, 'pg-redis-mirror-daemon');
    if (pipe === null) throw new RedisPipeError('Redis is unreachable (the daemon could not open its write connection)');
    this.pipe = pipe;
    return pipe;
  }

  close(): void {
    this.pipe?.close();
    this.pipe = undefined;
  }
}
