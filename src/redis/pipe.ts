import net from 'node:net';
import tls from 'node:tls';
import type { RedisOptions } from 'ioredis';
import { isCluster, type RedisClient } from './cluster.js';
import { bulkString } from './encoded-command.js';

/**
 * A connection of our own beside ioredis, for writing many plain commands at once (a copy's
 * HSETs) with their replies counted from the bytes as they arrive. Through ioredis, each
 * command is an object whose reply is parsed and matched on its own; for thousands of
 * commands per page that cost more of the copy's CPU than Redis saves by running plain
 * commands instead of a Lua script (measured: a script call costs Redis ~0.9 µs more per key
 * than HSET, HLEN and PERSIST pipelined).
 *
 * Only for replies that are one line each: integers, simple strings and errors (RESP2; no
 * bulk strings, arrays or MULTI).
 */

/** A connection problem, or a reply this connection cannot read: Redis is gone or misbehaving. */
export class RedisPipeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisPipeError';
  }
}

/**
 * What to check in the replies of one write: `replies` lines, and among them, every
 * `stride`-th starting at `checkedAt` (the HLEN of each key), an integer that must equal
 * `expected` at the same position (expected[i] for the i-th checked reply).
 */
export interface ReplyCheck {
  replies: number;
  stride?: number;
  checkedAt?: number;
  expected?: Int32Array;
}

export interface ReplyTally {
  /** Error replies, and the first few of their texts. */
  errors: number;
  errorTexts: string[];
  /** Checked replies that were not the expected integer. */
  mismatches: number;
}

interface Pending extends Required<Omit<ReplyCheck, 'expected'>> {
  expected: Int32Array | undefined;
  index: number;
  tally: ReplyTally;
  resolve: (tally: ReplyTally) => void;
  reject: (error: Error) => void;
}

const CR = 13;
const LF = 10;
const MINUS = 45;
const COLON = 58;
const PLUS = 43;
/** Error texts kept per write: enough to say what went wrong. */
const KEPT_ERRORS = 3;
const KEPT_ERROR_BYTES = 300;

export class RespPipe {
  private readonly pending: Pending[] = [];
  private failure: RedisPipeError | undefined;
  // The line being read: its type byte (0: none yet), integer so far, or error text bytes.
  private lineType = 0;
  private value = 0;
  private negative = false;
  private errorBytes: number[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.scan(chunk));
    socket.on('error', (error) => this.fail(new RedisPipeError(`Redis connection failed: ${error.message}`, { cause: error })));
    socket.on('close', () => this.fail(new RedisPipeError('Connection is closed.')));
  }

  /**
   * A pipe to the server `redis` talks to, logged in and on its database as ioredis is; null
   * for a Redis Cluster or a Sentinel setup (whose servers ioredis finds itself), and for a
   * server the pipe cannot reach or log in to (the caller then writes through ioredis).
   */
  static async open(redis: RedisClient): Promise<RespPipe | null> {
    if (isCluster(redis)) return null;
    const options = redis.options;
    if (options.sentinels !== undefined && options.sentinels !== null && options.sentinels.length > 0) return null;
    let socket: net.Socket;
    try {
      socket = await connect(options);
    } catch {
      return null;
    }
    const pipe = new RespPipe(socket);
    let hello = '';
    let replies = 0;
    if (options.password !== undefined && options.password !== null && options.password !== '') {
      hello += options.username !== undefined && options.username !== null && options.username !== '' ? command('AUTH', options.username, options.password) : command('AUTH', options.password);
      replies += 1;
    }
    if (options.db !== undefined && options.db !== 0) {
      hello += command('SELECT', String(options.db));
      replies += 1;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      // A server that accepts the connection but never answers must not hold up the copy.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RedisPipeError('no answer')), options.connectTimeout ?? 10_000);
      });
      const tally = await Promise.race([pipe.send(hello, { replies }), timeout]);
      if (tally.errors > 0) throw new RedisPipeError(tally.errorTexts.join('; '));
      // Its errors are not checked: a server (or an ACL) without CLIENT SETNAME still serves the copy.
      await Promise.race([pipe.send(command('CLIENT', 'SETNAME', 'pg-redis-mirror-copy'), { replies: 1 }), timeout]);
    } catch {
      pipe.close();
      return null;
    } finally {
      clearTimeout(timer);
    }
    return pipe;
  }

  /** Writes RESP commands and resolves once their `check.replies` replies have been read. */
  send(text: string, check: ReplyCheck): Promise<ReplyTally> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (check.replies === 0) {
      this.socket.write(text);
      return Promise.resolve({ errors: 0, errorTexts: [], mismatches: 0 });
    }
    return new Promise<ReplyTally>((resolve, reject) => {
      this.pending.push({
        replies: check.replies,
        stride: check.stride ?? 1,
        checkedAt: check.checkedAt ?? -1,
        expected: check.expected,
        index: 0,
        tally: { errors: 0, errorTexts: [], mismatches: 0 },
        resolve,
        reject,
      });
      this.socket.write(text);
    });
  }

  close(): void {
    this.fail(new RedisPipeError('Connection is closed.'));
    this.socket.destroy();
  }

  private scan(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (this.lineType === 0) {
        if (byte !== COLON && byte !== PLUS && byte !== MINUS) {
          this.fail(new RedisPipeError(`unexpected reply from Redis (type byte ${byte})`));
          this.socket.destroy();
          return;
        }
        this.lineType = byte;
        this.value = 0;
        this.negative = false;
      } else if (byte === LF) {
        this.reply();
        this.lineType = 0;
      } else if (byte === CR) {
        // The line ends at the LF.
      } else if (this.lineType === COLON) {
        if (byte === MINUS) this.negative = true;
        else this.value = this.value * 10 + (byte - 48);
      } else if (this.lineType === MINUS && this.errorBytes.length < KEPT_ERROR_BYTES) {
        this.errorBytes.push(byte);
      }
    }
  }

  private reply(): void {
    const head = this.pending[0];
    if (head === undefined) {
      this.fail(new RedisPipeError('a reply from Redis that no command asked for'));
      this.socket.destroy();
      return;
    }
    const at = head.index++;
    if (this.lineType === MINUS) {
      head.tally.errors += 1;
      if (head.tally.errorTexts.length < KEPT_ERRORS) head.tally.errorTexts.push(Buffer.from(this.errorBytes).toString());
      this.errorBytes = [];
    } else if (head.expected !== undefined && at % head.stride === head.checkedAt) {
      const value = this.negative ? -this.value : this.value;
      if (this.lineType !== COLON || value !== head.expected[(at - head.checkedAt) / head.stride]) head.tally.mismatches += 1;
    }
    if (head.index === head.replies) {
      this.pending.shift();
      head.resolve(head.tally);
    }
  }

  private fail(error: RedisPipeError): void {
    this.failure ??= error;
    for (const p of this.pending.splice(0)) p.reject(this.failure);
  }
}

/** One command in RESP. */
export function command(...args: string[]): string {
  return `*${args.length}\r\n${args.map(bulkString).join('')}`;
}

/** A socket to the server as ioredis reaches it: TCP or a Unix socket, with its TLS options. */
function connect(options: RedisOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const path = (options as { path?: string | null }).path;
    const target: net.NetConnectOpts =
      typeof path === 'string' && path !== '' ? { path } : { host: options.host ?? '127.0.0.1', port: options.port ?? 6379, ...(options.family === undefined ? {} : { family: options.family }) };
    const socket = options.tls === undefined ? net.connect(target) : tls.connect({ ...target, ...options.tls } as tls.ConnectionOptions);
    const timeout = setTimeout(() => socket.destroy(new Error('connect timeout')), options.connectTimeout ?? 10_000);
    const ready = options.tls === undefined ? 'connect' : 'secureConnect';
    socket.once(ready, () => {
      clearTimeout(timeout);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (error: Error): void => {
      clearTimeout(timeout);
      reject(error);
    };
    socket.once('error', onError);
  });
}
