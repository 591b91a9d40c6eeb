import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli, type RunResult, type RunningCli } from './cli.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A `listen` daemon in a child process, as a user runs it (build first). */
export interface ListenChild {
  readonly cli: RunningCli;
  readonly pid: number;
  /** Neither exited nor killed. */
  alive(): boolean;
  /** Its JSON log lines so far (stderr is not a terminal, so pino writes JSON). */
  logs(): LogLine[];
  /** SIGTERM: finishes the batch in flight and exits. */
  stop(): Promise<RunResult>;
  /** SIGKILL, no chance to clean up. */
  kill(): Promise<RunResult>;
}

export function spawnListen(args: { databaseUrl: string; redisUrl: string; prefix: string; extra?: string[] }): ListenChild {
  // An empty working directory: no config file of the repository is picked up.
  const cwd = mkdtempSync(join(tmpdir(), 'prm-listen-'));
  const cli = spawnCli(['listen', '--prefix', args.prefix, ...(args.extra ?? [])], {
    cwd,
    env: { DATABASE_URL: args.databaseUrl, REDIS_URL: args.redisUrl },
  });
  void cli.exited.finally(() => rmSync(cwd, { recursive: true, force: true }));
  const alive = (): boolean => cli.child.exitCode === null && cli.child.signalCode === null;
  const signal = async (name: NodeJS.Signals): Promise<RunResult> => {
    if (alive()) cli.child.kill(name);
    return cli.exited;
  };
  return {
    cli,
    pid: cli.child.pid!,
    alive,
    logs: () =>
      cli.stderr
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as LogLine),
    stop: () => signal('SIGTERM'),
    kill: () => signal('SIGKILL'),
  };
}
