import net from 'node:net';
import tls from 'node:tls';
import type { RedisOptions } from 'ioredis';
import { isCluster, type RedisClient } from './cluster.js';
import { bulkString } from './encoded-command.js';

/**
 * A connection of our own beside ioredis, for writing many plain commands at once (a copy's
 * HSETs, a daemon batch's MULTI ... EXEC) with their replies counted from the bytes as they
 * arrive. Through ioredis, each command is an object whose reply is parsed and matched on its
 * own; for thousands of commands per page that cost more of the writer's CPU than Redis saves
 * by running plain commands instead of a Lua script (measured: a script call costs Redis
 * ~0.9-2 µs more per key than HSET, HLEN and EXPIRE, inside MULTI or not).
 *
 * Replies are read as RESP2: one-line replies, bulk strings (kept only in part: their text
 * matters for small values such as a token) and array headers, whose elements count as
 * replies of their own. Only EXEC's array is expected to nest replies.
 */

/** A connection problem, or a reply this connection cannot read: Redis is gone or misbehaving. */
export class RedisPipeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisPipeError';
  }
}

/**
 * Integer replies that must have a given value: the reply at index at[i] (counted from the
 * first reply of the commands checked) must be expected[i]. `at` ascends.
 */
export interface ReplyChecks {
  at: Int32Array;
  expected: Int32Array;
}

export interface ReplyTally {
  /** Error replies, and the first few of their texts. */
  errors: number;
  errorTexts: string[];
  /** Checked replies that were not the expected integer. */
  mismatches: number;
}

export interface TransactionTally extends ReplyTally {
  /** EXEC ran nothing because a WATCHed key changed. */
  aborted: boolean;
}

/** A reply as `request` returns it: a simple or bulk string, an integer, nil, or an error. */
export type Reply = string | number | null | { error: string };

/**
 * Reads the replies of one send, in order; `take` returns true once it has all of them. The
 * text of simple and bulk strings is only decoded for readers that keep it: for the +QUEUED
 * of every command of a transaction, decoding was most of the pipe's CPU.
 */
interface Reader {
  readonly keepsText: boolean;
  take(type: number, value: number, text: string | null): boolean;
  reject(error: Error): void;
}

const CR = 13;
const LF = 10;
const MINUS = 45;
const COLON = 58;
const PLUS = 43;
const DOLLAR = 36;
const STAR = 42;
/** Error texts kept per write: enough to say what went wrong. */
const KEPT_ERRORS = 3;
/** Bytes kept of an error, a simple string or a bulk string. */
const KEPT_BYTES = 300;
const MULTI = '*1\r\n$5\r\nMULTI\r\n';
const EXEC = '*1\r\n$4\r\nEXEC\r\n';
export const NO_CHECKS: ReplyChecks = { at: new Int32Array(0), expected: new Int32Array(0) };

function newTally(): ReplyTally {
  return { errors: 0, errorTexts: [], mismatches: 0 };
}

function countError(tally: ReplyTally, text: string | null): void {
  tally.errors += 1;
  if (tally.errorTexts.length < KEPT_ERRORS) tally.errorTexts.push(text ?? '');
}

/** Counts `replies` one-line replies and checks some of them. */
class CountingReader implements Reader {
  readonly keepsText = false;
  private index = 0;
  private next = 0;

  constructor(
    private readonly replies: number,
    private readonly checks: ReplyChecks,
    readonly resolve: (tally: ReplyTally) => void,
    readonly reject: (error: Error) => void,
    /** Where to count: a transaction's elements count into the transaction's tally. */
    private readonly tally: ReplyTally = newTally(),
  ) {}

  take(type: number, value: number, text: string | null): boolean {
    if (type === STAR || (type === DOLLAR && value >= 0)) throw new RedisPipeError('a reply with parts where one line was expected');
    const at = this.index++;
    if (type === MINUS) countError(this.tally, text);
    if (this.next < this.checks.at.length && this.checks.at[this.next] === at) {
      if (type !== MINUS && (type !== COLON || value !== this.checks.expected[this.next])) this.tally.mismatches += 1;
      this.next += 1;
    }
    if (this.index < this.replies) return false;
    this.resolve(this.tally);
    return true;
  }
}

/**
 * MULTI's reply, one per queued command (+QUEUED or an error, which makes EXEC refuse), then
 * EXEC's: an array of `commands` one-line replies, checked as CountingReader checks; nil when
 * a WATCHed key changed; an error (EXECABORT) when queueing failed.
 */
class TransactionReader implements Reader {
  readonly keepsText = false;
  private queued = -1;
  private elements: CountingReader | undefined;
  private readonly tally: TransactionTally = { ...newTally(), aborted: false };

  constructor(
    private readonly commands: number,
    private readonly checks: ReplyChecks,
    readonly resolve: (tally: TransactionTally) => void,
    readonly reject: (error: Error) => void,
  ) {}

  take(type: number, value: number, text: string | null): boolean {
    if (this.elements !== undefined) return this.elements.take(type, value, text);
    if (this.queued < this.commands) {
      // MULTI's own reply, then each command's.
      if (type === MINUS) countError(this.tally, text);
      this.queued += 1;
      return false;
    }
    if (type === STAR && value === this.commands) {
      if (value === 0) return this.done();
      this.elements = new CountingReader(value, this.checks, () => this.done(), this.reject, this.tally);
      return false;
    }
    if (type === STAR && value < 0) this.tally.aborted = true;
    else if (type === MINUS) countError(this.tally, text);
    else throw new RedisPipeError('an EXEC reply that does not match its transaction');
    return this.done();
  }

  private done(): true {
    this.resolve(this.tally);
    return true;
  }
}

/** Keeps `replies` replies as they are. */
class ValueReader implements Reader {
  readonly keepsText = true;
  private readonly values: Reply[] = [];

  constructor(
    private readonly replies: number,
    readonly resolve: (values: Reply[]) => void,
    readonly reject: (error: Error) => void,
  ) {}

  take(type: number, value: number, text: string | null): boolean {
    if (type === STAR) throw new RedisPipeError('a reply with parts where one value was expected');
    this.values.push(type === MINUS ? { error: text ?? '' } : type === COLON ? value : type === DOLLAR && value < 0 ? null : text);
    if (this.values.length < this.replies) return false;
    this.resolve(this.values);
    return true;
  }
}

export class RespPipe {
  private readonly pending: Reader[] = [];
  private failure: RedisPipeError | undefined;
  /** The start of a line the last read ended in. */
  private rest: Buffer | undefined;
  /** Bytes of a bulk string still to come, its CRLF included; its length; what is kept of it, and whether. */
  private bulkLeft = 0;
  private bulkLength = 0;
  private bulkParts: Buffer[] = [];
  private bulkKept = 0;
  private keep = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.scan(chunk));
    socket.on('error', (error) => this.fail(new RedisPipeError(`Redis connection failed: ${error.message}`, { cause: error })));
    socket.on('close', () => this.fail(new RedisPipeError('Connection is closed.')));
  }

  /** Whether a pipe can reach the servers `redis` writes to: not a Redis Cluster nor a Sentinel setup (ioredis finds those servers itself). */
  static supports(redis: RedisClient): boolean {
    if (isCluster(redis)) return false;
    const { sentinels } = redis.options;
    return sentinels === undefined || sentinels === null || sentinels.length === 0;
  }

  /**
   * A pipe to the server `redis` talks to, logged in and on its database as ioredis is, named
   * `name` (CLIENT SETNAME); null where it is not supported (see `supports`), and for a server
   * the pipe cannot reach or log in to (the caller then writes through ioredis).
   */
  static async open(redis: RedisClient, name = 'pg-redis-mirror-copy'): Promise<RespPipe | null> {
    if (isCluster(redis) || !RespPipe.supports(redis)) return null;
    const options = redis.options;
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
      // Its errors are not checked: a server (or an ACL) without CLIENT SETNAME still serves.
      await Promise.race([pipe.send(command('CLIENT', 'SETNAME', name), { replies: 1 }), timeout]);
    } catch {
      pipe.close();
      return null;
    } finally {
      clearTimeout(timer);
    }
    return pipe;
  }

  /**
   * Writes RESP commands and resolves once their `check.replies` replies, each one line, have
   * been read: how many were errors, and how many of `check.checks` did not hold.
   */
  send(text: string, check: { replies: number; checks?: ReplyChecks }): Promise<ReplyTally> {
    if (check.replies === 0) {
      if (this.failure !== undefined) return Promise.reject(this.failure);
      this.socket.write(text);
      return Promise.resolve(newTally());
    }
    return this.write(text, (resolve, reject) => new CountingReader(check.replies, check.checks ?? NO_CHECKS, resolve, reject));
  }

  /**
   * Runs `commands` commands (their RESP text) as one MULTI ... EXEC; `check.checks` counts
   * from the first of them. All of them or none run: none when queueing one failed (an error
   * reply, counted) or when a key WATCHed before changed (`aborted`).
   */
  transaction(text: string, check: { commands: number; checks?: ReplyChecks }): Promise<TransactionTally> {
    // Written as three pieces: joining them flattened the (large) text into a copy first.
    return this.write([MULTI, text, EXEC], (resolve, reject) => new TransactionReader(check.commands, check.checks ?? NO_CHECKS, resolve, reject));
  }

  /** Writes commands and resolves with their `replies` replies, each a value or one line. */
  request(text: string, replies: number): Promise<Reply[]> {
    return this.write(text, (resolve, reject) => new ValueReader(replies, resolve, reject));
  }

  /** Runs `fn`, whose writes go out together, in one system call. */
  together<T>(fn: () => T): T {
    this.socket.cork();
    try {
      return fn();
    } finally {
      this.socket.uncork();
    }
  }

  get closed(): boolean {
    return this.failure !== undefined;
  }

  close(): void {
    this.fail(new RedisPipeError('Connection is closed.'));
    this.socket.destroy();
  }

  private write<T>(text: string | readonly string[], reader: (resolve: (value: T) => void, reject: (error: Error) => void) => Reader): Promise<T> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.pending.push(reader(resolve, reject));
      if (typeof text === 'string') {
        this.socket.write(text);
      } else {
        this.socket.cork();
        for (const piece of text) this.socket.write(piece);
        this.socket.uncork();
      }
    });
  }

  /**
   * Reads whole lines found with indexOf (native) rather than byte by byte: a transaction has
   * two short replies per command, and a byte loop over them cost the daemon more CPU than the
   * rest of its write path. A line split across reads waits for the next read, joined to it.
   */
  private scan(data: Buffer): void {
    const chunk = this.rest === undefined ? data : Buffer.concat([this.rest, data]);
    this.rest = undefined;
    let i = 0;
    while (i < chunk.length) {
      if (this.bulkLeft > 0) {
        // A bulk string's bytes, then its CRLF.
        const end = Math.min(chunk.length, i + this.bulkLeft);
        if (this.keep && this.bulkKept < KEPT_BYTES) {
          const part = chunk.subarray(i, Math.min(end, i + Math.max(0, Math.min(KEPT_BYTES - this.bulkKept, this.bulkLeft - 2))));
          this.bulkParts.push(part);
          this.bulkKept += part.length;
        }
        this.bulkLeft -= end - i;
        i = end;
        if (this.bulkLeft === 0) {
          const text = this.keep ? Buffer.concat(this.bulkParts).toString() : null;
          this.bulkParts = [];
          this.bulkKept = 0;
          if (!this.reply(DOLLAR, this.bulkLength, text)) return;
        }
        continue;
      }
      const lf = chunk.indexOf(LF, i);
      if (lf < 0) {
        this.rest = chunk.subarray(i);
        return;
      }
      const type = chunk[i]!;
      // The line's content: after the type byte, before CR LF.
      const from = i + 1;
      const to = chunk[lf - 1] === CR ? lf - 1 : lf;
      i = lf + 1;
      if (type === COLON || type === DOLLAR || type === STAR) {
        let value = 0;
        const negative = chunk[from] === MINUS;
        for (let j = negative ? from + 1 : from; j < to; j++) value = value * 10 + (chunk[j]! - 48);
        if (negative) value = -value;
        if (type === DOLLAR && value >= 0) {
          this.bulkLeft = value + 2;
          this.bulkLength = value;
          this.keep = this.pending[0]?.keepsText ?? false;
        } else if (!this.reply(type, value, null)) {
          return;
        }
      } else if (type === PLUS || type === MINUS) {
        const keep = type === MINUS || (this.pending[0]?.keepsText ?? false);
        if (!this.reply(type, 0, keep ? chunk.toString('utf8', from, Math.min(to, from + KEPT_BYTES)) : null)) return;
      } else {
        this.protocolError(`unexpected reply from Redis (type byte ${type})`);
        return;
      }
    }
  }

  /** Hands one reply to the reader waiting for it; false once the pipe failed. */
  private reply(type: number, value: number, text: string | null): boolean {
    const head = this.pending[0];
    if (head === undefined) {
      this.protocolError('a reply from Redis that no command asked for');
      return false;
    }
    try {
      if (head.take(type, value, text)) this.pending.shift();
    } catch (error) {
      this.protocolError(error instanceof Error ? error.message : String(error));
      return false;
    }
    return true;
  }

  private protocolError(message: string): void {
    this.fail(new RedisPipeError(message));
    this.socket.destroy();
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
