import { InvalidArgumentError, type Command } from 'commander';
import { MirrorDaemon } from '../daemon/daemon.js';
import { MetricsServer } from '../metrics/server.js';
import type { ConfigOverrides } from '../config/load.js';
import { configFrom, loggerFrom, portNumber, positiveInt } from './options.js';

interface ListenOptions {
  batchSize?: number;
  pollInterval?: number;
  sync?: boolean;
  metricsPort?: number;
  metricsHost?: string;
  group?: string;
}

function groupName(value: string): string {
  if (!/^[A-Za-z0-9_.-]{1,40}$/.test(value)) throw new InvalidArgumentError('must be 1-40 letters, digits, "_", "." or "-"');
  return value;
}

export function registerListen(program: Command): void {
  program
    .command('listen')
    .description('run the daemon: apply every journaled change to Redis, now and as it happens')
    .option('--batch-size <n>', 'most changed keys applied per batch', positiveInt)
    .option('--poll-interval <ms>', 'safety poll of the journal in milliseconds', positiveInt)
    .option('--sync', 'also copy tables that were never copied (or whose options changed), while streaming')
    .option('--group <name>', 'apply only the tables of this group (their "group" option); one leader per group', groupName)
    .option('--metrics-port <port>', 'serve Prometheus /metrics and /healthz on this port', portNumber)
    .option('--metrics-host <host>', 'interface for --metrics-port (default: all)')
    .action(async (options: ListenOptions, command: Command) => {
      const overrides: Partial<ConfigOverrides> = {};
      if (options.batchSize !== undefined) overrides.batchSize = options.batchSize;
      if (options.metricsPort !== undefined) overrides.metricsPort = options.metricsPort;
      if (options.metricsHost !== undefined) overrides.metricsHost = options.metricsHost;
      const config = configFrom(command, overrides);
      const logger = loggerFrom(command);
      const pollIntervalMs = options.pollInterval ?? config.pollIntervalMs;
      // Before the daemon: a port in use is one clear line, with nothing started yet.
      const metrics =
        config.metricsPort === undefined
          ? undefined
          : await MetricsServer.start({
              port: config.metricsPort,
              ...(config.metricsHost === undefined ? {} : { host: config.metricsHost }),
              databaseUrl: config.databaseUrl,
              schema: config.schema,
              // The daemon goes idle (or finishes a batch) at least every poll: far longer is a hang.
              stallAfterMs: Math.max(60_000, pollIntervalMs * 10),
              logger,
            });
      let daemon: MirrorDaemon;
      try {
        daemon = await MirrorDaemon.start({
          databaseUrl: config.databaseUrl,
          redisUrl: config.redisUrl,
          schema: config.schema,
          batchSize: config.batchSize,
          pollIntervalMs,
          syncNeverCopied: options.sync === true,
          ...(options.group === undefined ? {} : { group: options.group }),
          logger,
        });
      } catch (error) {
        await metrics?.close();
        throw error;
      }
      metrics?.attach(daemon);
      await new Promise<void>((resolve) => {
        let signalled = false;
        const onSignal = (signal: NodeJS.Signals): void => {
          if (signalled) {
            logger.warn({ signal }, 'second signal: exiting without waiting');
            process.exit(1);
          }
          signalled = true;
          logger.info({ signal }, 'finishing the batch in flight, then exiting');
          // Health turns 503 at once, so that nothing waits on a daemon on its way out.
          metrics?.metrics.detach();
          daemon
            .stop()
            .then(() => metrics?.close())
            .then(resolve, resolve);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}
