import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import type { Certificates } from './certs.js';

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

export interface RedisServerOptions {
  /** `requirepass`: the default user needs this password (AUTH <password>). */
  password?: string;
  /** ACL users, each with its password and rules (default: every key, channel and command). */
  users?: { name: string; password: string; rules?: string[] }[];
  /** Listen with TLS only (no plain port), with these certificates; clients need no certificate. */
  tls?: Certificates;
  /**
   * Keep the data in an append-only file here, written before each write is acknowledged, so the
   * keys survive a stop (even SIGKILL) and start, as on a durable server. Default: no persistence.
   */
  dataDir?: string;
}

/** A redis-server of the test's own, without persistence, stopped by its PID (never by name). */
export class TestRedisServer {
  private process: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly options: RedisServerOptions,
  ) {}

  static async start(port?: number, options: RedisServerOptions = {}): Promise<TestRedisServer> {
    const server = new TestRedisServer(port ?? (await freePort()), options);
    await server.start();
    return server;
  }

  /** The address without credentials (`rediss://localhost` with TLS: the certificate names localhost). */
  get url(): string {
    return this.options.tls === undefined ? `redis://127.0.0.1:${this.port}` : `rediss://localhost:${this.port}`;
  }

  private args(): string[] {
    const { password, users = [], tls, dataDir } = this.options;
    const persistence = dataDir === undefined ? ['--appendonly', 'no'] : ['--dir', dataDir, '--appendonly', 'yes', '--appendfsync', 'always'];
    const args = ['--bind', '127.0.0.1', '--save', '', ...persistence];
    if (tls === undefined) args.push('--port', String(this.port));
    else {
      args.push('--port', '0', '--tls-port', String(this.port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no');
    }
    if (password !== undefined) args.push('--requirepass', password);
    for (const user of users) args.push('--user', user.name, 'on', `>${user.password}`, ...(user.rules ?? ['~*', '&*', '+@all']));
    return args;
  }

  async start(): Promise<void> {
    this.process = spawn('redis-server', this.args(), { stdio: 'ignore' });
    // A TCP connect, not a client: it needs neither the password nor TLS.
    const deadline = Date.now() + 5000;
    while (!(await accepts(this.port))) {
      if (this.process.exitCode !== null) throw new Error(`redis-server on port ${this.port} exited with ${this.process.exitCode}`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 50));
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

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
