import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCertificates, type Certificates } from './certs.js';
import { freePort } from './redis-server.js';

const BIN = '/usr/lib/postgresql/15/bin';

export interface PgServerOptions {
  /** Password of the `postgres` superuser; TCP logins need it (scram-sha-256). */
  password: string;
}


/**
 * A PostgreSQL cluster of the test's own (initdb in a temp dir) with ssl = on and a certificate
 * for `localhost` signed by a throwaway CA, and password logins over TCP: the shared server has
 * neither. Runs as the `postgres` OS user when the tests run as root (postgres refuses root);
 * stopped by its PID.
 */
export class TestPgServer {
  private process: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly certs: Certificates,
  ) {}

  static async start(options: PgServerOptions): Promise<TestPgServer> {
    const dir = mkdtempSync(join(tmpdir(), 'prm-pg-'));
    const owner = process.getuid?.() === 0 ? osUser('postgres') : undefined;
    const certs = makeCertificates(dir);
    // The server reads its key only when it alone can read it.
    chmodSync(certs.key, 0o600);
    writeFileSync(join(dir, 'pwfile'), `${options.password}\n`);
    if (owner !== undefined) {
      chownSync(dir, owner.uid, owner.gid);
      for (const file of [certs.key, certs.cert, certs.ca, join(dir, 'pwfile')]) chownSync(file, owner.uid, owner.gid);
    }
    const data = join(dir, 'data');
    execFileSync(join(BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${join(dir, 'pwfile')}`, '-E', 'UTF8', '--no-sync'], {
      stdio: 'ignore',
      ...(owner ?? {}),
    });
    // Plain TCP only for the superuser: any other role must come over TLS.
    writeFileSync(join(data, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all postgres 127.0.0.1/32 scram-sha-256\n');
    const server = new TestPgServer(await freePort(), dir, certs);
    const args = ['-D', data, '-p', String(server.port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'ssl=on'];
    args.push('-c', `ssl_cert_file=${certs.cert}`, '-c', `ssl_key_file=${certs.key}`, '-c', 'fsync=off', '-c', 'shared_buffers=16MB', '-c', 'max_connections=30');
    server.process = spawn(join(BIN, 'postgres'), args, { stdio: 'ignore', ...(owner ?? {}) });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        execFileSync(join(BIN, 'pg_isready'), ['-q', '-h', dir, '-p', String(server.port)], { stdio: 'ignore' });
        break;
      } catch {
        if (server.process.exitCode !== null) throw new Error(`test postgres exited with ${server.process.exitCode}`);
        if (Date.now() > deadline) throw new Error('test postgres did not start');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return server;
  }

  /** postgres://<user>:<password>@<host>:<port>/postgres?<params> (user `postgres`, host 127.0.0.1 unless given). */
  url(password: string, params = '', options: { host?: string; user?: string } = {}): string {
    const user = options.user ?? 'postgres';
    return `postgres://${user}:${encodeURIComponent(password)}@${options.host ?? '127.0.0.1'}:${this.port}/postgres${params === '' ? '' : `?${params}`}`;
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit');
      // Fast shutdown: disconnect clients, no checkpoint wait worth speaking of (fsync is off).
      child.kill('SIGINT');
      await exited;
    }
    this.process = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function osUser(name: string): { uid: number; gid: number } {
  const id = (flag: string): number => Number(execFileSync('id', [flag, name]).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}
