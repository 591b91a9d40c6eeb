import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { Redis } from 'ioredis';

/** A free TCP port on loopback, as the kernel hands it out. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * A redis-server of the test's own, stopped by its PID (never by name). Without persistence,
 * unless `dataDir` is given: then every write is in an append-only file before it is
 * acknowledged, so the keys survive a stop (even SIGKILL) and start, as on a durable server.
 */
export class TestRedisServer {
  private process: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dataDir?: string,
  ) {}

  static async start(port?: number, options: { dataDir?: string } = {}): Promise<TestRedisServer> {
    const server = new TestRedisServer(port ?? (await freePort()), options.dataDir);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const persistence = this.dataDir === undefined ? ['--appendonly', 'no'] : ['--dir', this.dataDir, '--appendonly', 'yes', '--appendfsync', 'always'];
    this.process = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: 'ignore' });
    const client = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await client.connect();
        await client.ping();
        client.disconnect();
        return;
      } catch {
        client.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child === undefined || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    this.process = undefined;
  }
}
