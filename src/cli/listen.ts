import type { Command } from 'commander';
import { MirrorDaemon } from '../daemon/daemon.js';
import { configFrom, loggerFrom, positiveInt } from './options.js';

export function registerListen(program: Command): void {
  program
    .command('listen')
    .description('run the daemon: apply every journaled change to Redis, now and as it happens')
    .option('--batch-size <n>', 'most changed keys applied per batch', positiveInt)
    .option('--poll-interval <ms>', 'safety poll of the journal in milliseconds', positiveInt)
    .option('--sync', 'also copy tables that were never copied (or whose options changed), while streaming')
    .action(async (options: { batchSize?: number; pollInterval?: number; sync?: boolean }, command: Command) => {
      const config = configFrom(command, options.batchSize === undefined ? {} : { batchSize: options.batchSize });
      const logger = loggerFrom(command);
      const daemon = await MirrorDaemon.start({
        databaseUrl: config.databaseUrl,
        redisUrl: config.redisUrl,
        schema: config.schema,
        batchSize: config.batchSize,
        pollIntervalMs: options.pollInterval ?? config.pollIntervalMs,
        syncNeverCopied: options.sync === true,
        logger,
      });
      await new Promise<void>((resolve) => {
        let signalled = false;
        const onSignal = (signal: NodeJS.Signals): void => {
          if (signalled) {
            logger.warn({ signal }, 'second signal: exiting without waiting');
            process.exit(1);
          }
          signalled = true;
          logger.info({ signal }, 'finishing the batch in flight, then exiting');
          daemon.stop().then(resolve, resolve);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}
