import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './redis-server.js';

const run = promisify(execFile);
const BIN_DIR = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';

/**
 * PostgreSQL refuses to run as root, and the tests run as root: its programs run as the
 * `postgres` OS user. When the tests already run as another user, they run as that user.
 */
async function asPostgres(program: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const path = join(BIN_DIR, program);
  if (process.getuid?.() === 0) return run('runuser', ['-u', 'postgres', '--', path, ...args], { timeout: 60_000 });
  return run(path, args, { timeout: 60_000 });
}

async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
}

/**
 * A PostgreSQL cluster of the test's own (trust auth, no fsync, loopback on a free port), so a
 * test can stop and start it without disturbing the shared server. pg_ctl stops it through
 * its postmaster.pid: nothing is ever signalled by name.
 */
export class TestPgCluster {
  private running = false;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async create(): Promise<TestPgCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'prm-pg-'));
    const ids = await postgresIds();
    if (ids !== undefined) await chown(dir, ids.uid, ids.gid);
    await chmod(dir, 0o700);
    const server = new TestPgCluster(dir, await freePort());
    await asPostgres('initdb', ['-D', server.dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
    await server.start();
    return server;
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  get logFile(): string {
    return join(this.dir, 'server.log');
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      '-c listen_addresses=127.0.0.1',
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c shared_buffers=32MB',
      '-c max_connections=40',
    ].join(' ');
    await asPostgres('pg_ctl', ['start', '-D', this.dataDir, '-w', '-t', '30', '-l', this.logFile, '-o', options]);
    this.running = true;
  }

  /**
   * `fast` disconnects every session (as a restart by an operator does); `immediate` is a
   * crash: no shutdown checkpoint, recovery on the next start.
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!this.running) return;
    await asPostgres('pg_ctl', ['stop', '-D', this.dataDir, '-w', '-t', '30', '-m', mode]);
    this.running = false;
  }

  /** Stops the server (if running) and removes its files. */
  async destroy(): Promise<void> {
    try {
      await this.stop('immediate');
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }

  async log(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  async query(text: string, database = 'postgres'): Promise<pg.QueryResult> {
    const client = new pg.Client({ connectionString: this.url(database) });
    await client.connect();
    try {
      return await client.query(text);
    } finally {
      await client.end();
    }
  }
}
