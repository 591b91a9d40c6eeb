import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis-server.js';

const run = promisify(execFile);

/**
 * A Redis Cluster of the test's own: `size` masters without replicas or persistence, in a
 * temporary directory, formed with `redis-cli --cluster create`; stopped by PID (never by name).
 */
export class TestRedisCluster {
  private readonly processes: ChildProcess[] = [];

  private constructor(
    readonly ports: number[],
    private readonly dir: string,
  ) {}

  static async start(size = 3): Promise<TestRedisCluster> {
    const ports: number[] = [];
    while (ports.length < size) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const cluster = new TestRedisCluster(ports, mkdtempSync(join(tmpdir(), 'prm-cluster-')));
    try {
      await cluster.form();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** The seed-node URL the tool takes. */
  get url(): string {
    return `redis+cluster://${this.ports.map((port) => `127.0.0.1:${port}`).join(',')}`;
  }

  private async form(): Promise<void> {
    for (const port of this.ports) {
      const child = spawn(
        'redis-server',
        [
          '--bind', '127.0.0.1', '--port', String(port), '--dir', this.dir,
          '--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, `nodes-${port}.conf`),
          '--save', '', '--appendonly', 'no',
        ],
        { stdio: 'ignore' },
      );
      this.processes.push(child);
    }
    for (const port of this.ports) await this.waitFor(port, 'PONG', ['PING']);
    await run('redis-cli', ['--cluster', 'create', ...this.ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of this.ports) await this.waitFor(port, 'cluster_state:ok', ['CLUSTER', 'INFO']);
  }

  /** Polls a node with redis-cli until its reply contains `expected`. */
  private async waitFor(port: number, expected: string, command: string[], timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const exited = this.processes.find((p) => p.exitCode !== null);
      if (exited !== undefined) throw new Error(`a cluster redis-server exited with ${exited.exitCode}`);
      const reply = await run('redis-cli', ['-p', String(port), ...command]).then(
        (r) => r.stdout,
        () => '',
      );
      if (reply.includes(expected)) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} never answered ${expected} to ${command.join(' ')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async stop(): Promise<void> {
    for (const child of this.processes) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    this.processes.length = 0;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
