import type { Command } from 'commander';
import { install, uninstall, renderPlanned, type LockPolicy, type PlanResult } from '../install/install.js';
import { DEFAULT_LOCK_TIMEOUT_MS } from '../install/render.js';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import { purgeRedisKeys } from '../install/purge.js';
import { readInstallState } from '../install/state.js';
import { captureFunctionName } from '../install/names.js';
import { createPool } from '../db/connect.js';
import { describePgError } from '../db/errors.js';
import { createDb } from '../db/kysely.js';
import { connectRedis } from '../redis/connect.js';
import { renderDaemonGrants } from '../install/grants.js';
import { configFrom, loggerFrom, positiveInt } from './options.js';

const DONE = { create: 'created', update: 'updated', unchanged: 'unchanged', remove: 'removed' } as const;
const SCHEMA_DONE = { create: 'created schema', upgrade: 'upgraded schema', remove: 'removed schema', unchanged: '' } as const;

export function printPlan(result: PlanResult, out: (line: string) => void = console.log): void {
  for (const t of result.tables) out(`${DONE[t.action]} ${t.table}${t.reason === undefined ? '' : ` (${t.reason})`}`);
  if (SCHEMA_DONE[result.schemaAction] !== '') out(SCHEMA_DONE[result.schemaAction]);
  if (result.tables.some((t) => t.reason === 'options changed')) {
    out('note: keys already in Redis keep their old layout and values until rewritten; run `pg-redis-mirror verify --repair`');
  }
}

const LOCK_TIMEOUT_HELP = `how long each attempt waits for a table lock, in milliseconds (default ${DEFAULT_LOCK_TIMEOUT_MS}); writers of that table wait as long`;

function lockPolicy(options: { lockTimeout?: number }, logger: Logger, what: string): LockPolicy {
  return {
    ...(options.lockTimeout === undefined ? {} : { lockTimeoutMs: options.lockTimeout }),
    onRetry: ({ attempt, attempts, delayMs, error }) =>
      logger.warn({ attempt, attempts, retryInMs: delayMs, err: errorMessage(error) }, `${what}: a mirrored table is busy (a transaction holds a conflicting lock); retrying`),
  };
}

export function registerInstall(program: Command): void {
  program
    .command('install')
    .description('create the journal and put triggers on the configured tables (idempotent; re-run after changing the config)')
    .option('--lock-timeout <ms>', LOCK_TIMEOUT_HELP, positiveInt)
    .action(async (options: { lockTimeout?: number }, command: Command) => {
      const config = configFrom(command);
      const result = await install(config, undefined, lockPolicy(options, loggerFrom(command), 'install'));
      printPlan(result);
      if (result.body === '') console.log('nothing to do: install is up to date');
    });

  program
    .command('uninstall')
    .description('remove the triggers and everything install created in PostgreSQL')
    .option('--purge-redis', 'also delete the mirrored keys from Redis')
    .option('--lock-timeout <ms>', LOCK_TIMEOUT_HELP, positiveInt)
    .action(async (options: { purgeRedis?: boolean; lockTimeout?: number }, command: Command) => {
      const config = configFrom(command);
      // Connect to Redis first: a purge that cannot happen should stop before anything is removed.
      const redis = options.purgeRedis === true ? await connectRedis(config.redisUrl) : undefined;
      try {
        const pool = createPool(config.databaseUrl, { max: 1 });
        let state;
        try {
          state = await readInstallState(createDb(pool), config.schema, captureFunctionName);
          const result = await uninstall(config, pool, lockPolicy(options, loggerFrom(command), 'uninstall'));
          printPlan(result);
          if (!state.schemaExists) console.log(`nothing to do: pg-redis-mirror is not installed (no schema "${config.schema}")`);
        } catch (error) {
          throw describePgError(error, config.databaseUrl);
        } finally {
          await pool.end();
        }
        if (redis !== undefined) {
          const deleted = await purgeRedisKeys(redis, state.tables, state.installId);
          console.log(`deleted ${deleted} Redis keys`);
        }
      } finally {
        redis?.disconnect();
      }
    });

  program
    .command('sql')
    .description('print exactly the SQL that install or uninstall would run now, without running it; `sql grants --role <name>` prints what the daemon\'s role needs')
    .argument('<action>', 'install, uninstall or grants')
    .option('--role <name>', 'with grants: the role the daemon logs in as')
    .action(async (action: string, options: { role?: string }, command: Command) => {
      if (action !== 'install' && action !== 'uninstall' && action !== 'grants') {
        command.error(`error: sql takes "install", "uninstall" or "grants", not "${action}"`);
      }
      const config = configFrom(command);
      if (action === 'grants') {
        if (options.role === undefined) command.error('error: sql grants needs --role <name>, the role the daemon logs in as');
        const pool = createPool(config.databaseUrl, { max: 1 });
        const db = createDb(pool);
        try {
          process.stdout.write(await renderDaemonGrants(db, config, options.role!));
        } catch (error) {
          throw describePgError(error, config.databaseUrl);
        } finally {
          await db.destroy();
        }
        return;
      }
      const result = await renderPlanned(config, action);
      process.stdout.write(result.script);
    });
}
