import { Command, CommanderError, Option } from 'commander';
import { isUserError, errorMessage } from '../errors.js';
import { redactUrl } from '../db/errors.js';
import { registerInit } from './init.js';
import { registerInstall } from './install.js';
import { registerListen } from './listen.js';
import { registerVerify } from './verify.js';
import { registerStatus } from './status.js';
import { registerDemo } from './demo.js';
import { registerSync } from './sync.js';
import { collect } from './options.js';

export function buildProgram(): Command {
  const program = new Command('pg-redis-mirror')
    .description('Keep Redis an exact, low-latency mirror of chosen PostgreSQL tables')
    .option('-c, --config <file>', 'config file (default: pg-redis-mirror.json/.yaml/.yml in the current directory)')
    .option('--database-url <url>', 'PostgreSQL URL (default: $DATABASE_URL, then postgres://localhost:5432/postgres)')
    .option('--redis-url <url>', 'Redis URL; redis+cluster://host:port,host:port for a Redis Cluster (default: $REDIS_URL, then redis://127.0.0.1:6379)')
    .option('--schema <name>', 'schema that holds the journal and triggers functions (default: redis_mirror)')
    .option('--prefix <prefix>', 'prefix of every Redis key (default: pg:)')
    .option('-t, --table <schema.name>', 'a table to mirror (repeatable; adds to the config file)', collect)
    .option('-v, --verbose', 'debug logs, and stack traces on errors')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInit(program);
  registerInstall(program);
  registerListen(program);
  registerSync(program);
  registerVerify(program);
  registerStatus(program);
  registerDemo(program);
  return program;
}

/** Runs the CLI; a user error is one line on stderr and exit code 1, the stack only with --verbose. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;
      return;
    }
    const verbose = argv.includes('--verbose') || argv.includes('-v');
    const message = redactUrl(errorMessage(error));
    process.stderr.write(`pg-redis-mirror: ${isUserError(error) || verbose ? '' : 'unexpected error: '}${message}\n`);
    if (verbose && error instanceof Error && error.stack !== undefined) process.stderr.write(`${redactUrl(error.stack)}\n`);
    process.exitCode = 1;
  }
}
