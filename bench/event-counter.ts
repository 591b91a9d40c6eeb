/**
 * Times the bulk figure's "all in Redis": counts the keyspace events of one kind on keys
 * `<head><id>` for ids 1..n, each id once, and resolves when every id has had one.
 *
 * It reads its subscription's bytes itself instead of through ioredis. ioredis turns each of the
 * 100k events into buffers, strings and an emitted event: ~0.25 s of this process's CPU, on the
 * same two cores as the listener being timed, which made the drain look 60-100 ms slower (for
 * diy as for the mirror). Scanning for the event's bytes and reading the id before them costs a
 * fraction of that (bench/RESULTS.md, Method).
 */
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';

/** A connection's bytes left unscanned: at most one message that a read split. */
const MAX_TAIL = 64 * 1024;

function command(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

export class KeyspaceEventCounter {
  /** Resolves with the arrival time (performance.now()) of the event that completed the set. */
  readonly done: Promise<number>;
  private readonly socket: net.Socket;
  private readonly seenIds: Uint8Array;
  private count = 0;
  private tail: Buffer = Buffer.alloc(0);
  private resolveDone: (at: number) => void = () => undefined;
  private rejectDone: (error: Error) => void = () => undefined;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    socket: net.Socket,
    private readonly head: Buffer,
    private readonly marker: Buffer,
    private readonly n: number,
    timeoutMs: number,
  ) {
    this.socket = socket;
    this.seenIds = new Uint8Array(n + 1);
    this.done = new Promise<number>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
    this.timer = setTimeout(() => this.rejectDone(new Error(`only ${this.count} of ${n} keys got an event within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => this.scan(chunk));
    socket.on('error', (error) => this.rejectDone(error));
  }

  /**
   * Subscribes to the events of keys `<keyHead><id>` in database `db` of `redisUrl`, and
   * resolves once the subscription is in place (events after that are counted).
   */
  static async open(redisUrl: string, db: number, keyHead: string, event: string, n: number, timeoutMs: number): Promise<KeyspaceEventCounter> {
    const url = new URL(redisUrl);
    const options = { host: url.hostname, port: Number(url.port || '6379') };
    const socket = url.protocol === 'rediss:' ? tls.connect({ ...options, servername: url.hostname }) : net.connect(options);
    await new Promise<void>((resolve, reject) => {
      socket.once(url.protocol === 'rediss:' ? 'secureConnect' : 'connect', resolve);
      socket.once('error', reject);
    });
    const channelHead = `__keyspace@${db}__:${keyHead}`;
    const pattern = `${channelHead.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
    const password = decodeURIComponent(url.password);
    const username = decodeURIComponent(url.username);
    const login = password === '' ? '' : username === '' ? command('AUTH', password) : command('AUTH', username, password);
    // Replies to AUTH come first; the subscription's confirmation follows. Both are awaited as text.
    const confirmed = new Promise<void>((resolve, reject) => {
      let text = '';
      const onData = (chunk: Buffer): void => {
        text += chunk.toString('latin1');
        if (text.startsWith('-')) reject(new Error(`event counter: ${text.split('\r\n')[0]}`));
        if (text.includes('psubscribe')) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    });
    socket.write(login + command('PSUBSCRIBE', pattern));
    await confirmed;
    return new KeyspaceEventCounter(socket, Buffer.from(channelHead), Buffer.from(`\r\n$${Buffer.byteLength(event)}\r\n${event}\r\n`), n, timeoutMs);
  }

  seen(): number {
    return this.count;
  }

  close(): void {
    clearTimeout(this.timer);
    this.socket.destroy();
  }

  /** Each message ends `<channel>\r\n$<len>\r\n<event>\r\n`, the channel `<head><id>`. */
  private scan(chunk: Buffer): void {
    const at = performance.now();
    const buf = this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]);
    let from = 0;
    for (;;) {
      const m = buf.indexOf(this.marker, from);
      if (m < 0) break;
      from = m + this.marker.length;
      let start = m;
      let id = 0;
      for (let scale = 1; start > 0 && buf[start - 1]! >= 0x30 && buf[start - 1]! <= 0x39; scale *= 10) {
        start -= 1;
        id += (buf[start]! - 0x30) * scale;
      }
      if (start === m || id > this.n || start < this.head.length) continue;
      if (buf.compare(this.head, 0, this.head.length, start - this.head.length, start) !== 0) continue;
      if (this.seenIds[id] === 1) continue;
      this.seenIds[id] = 1;
      this.count += 1;
      if (this.count === this.n) {
        clearTimeout(this.timer);
        this.resolveDone(at);
      }
    }
    const rest = buf.subarray(from);
    this.tail = Buffer.from(rest.length > MAX_TAIL ? rest.subarray(rest.length - MAX_TAIL) : rest);
  }
}
