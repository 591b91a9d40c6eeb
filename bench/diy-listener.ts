/**
 * The do-it-yourself listener the benchmark compares against: what most teams write by hand
 * next to a row-level `pg_notify` trigger. A plain `pg` Client LISTENs on one channel; each
 * notification carries the whole row as JSON, which is written to Redis with SET (DEL for a
 * DELETE). No journal, no retry: a notification sent while this process is down is gone, and
 * a row whose JSON is over 8000 bytes makes the writing transaction fail.
 *
 *   node --import tsx bench/diy-listener.ts --database-url <url> --redis-url <url> --prefix <p> [--channel diy]
 *
 * Prints "ready" on stdout once it is listening; exits 0 on SIGTERM/SIGINT.
 */
import pg from 'pg';
import { Redis } from 'ioredis';

interface Args {
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  channel: string;
}

function parseArgs(argv: readonly string[]): Args {
  const value = (name: string, fallback?: string): string => {
    const i = argv.indexOf(name);
    const v = i >= 0 ? argv[i + 1] : fallback;
    if (v === undefined) throw new Error(`diy-listener: ${name} is required`);
    return v;
  };
  return {
    databaseUrl: value('--database-url'),
    redisUrl: value('--redis-url', 'redis://127.0.0.1:6379'),
    prefix: value('--prefix'),
    channel: value('--channel', 'diy'),
  };
}

interface Change {
  table: string;
  op: 'INSERT' | 'UPDATE' | 'DELETE';
  row: { id: number | string } & Record<string, unknown>;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const redis = new Redis(args.redisUrl);
  const client = new pg.Client({ connectionString: args.databaseUrl, application_name: 'prm-bench-diy' });
  let failures = 0;

  client.on('notification', (message) => {
    if (message.payload === undefined) return;
    const change = JSON.parse(message.payload) as Change;
    const key = `${args.prefix}${change.table}:${String(change.row.id)}`;
    const write = change.op === 'DELETE' ? redis.del(key) : redis.set(key, JSON.stringify(change.row));
    write.catch((error: unknown) => {
      failures += 1;
      if (failures <= 5) process.stderr.write(`diy-listener: Redis write failed: ${String(error)}\n`);
    });
  });
  client.on('error', (error) => {
    process.stderr.write(`diy-listener: PostgreSQL connection error: ${error.message}\n`);
    process.exit(1);
  });

  await client.connect();
  await client.query(`LISTEN ${args.channel}`);
  await redis.ping();
  process.stdout.write('ready\n');

  const stop = (): void => {
    void Promise.allSettled([client.end(), redis.quit()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`diy-listener: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
