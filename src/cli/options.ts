import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { LevelWithSilent } from 'pino';
import { loadConfig, type Config, type ConfigOverrides } from '../config/load.js';
import { createLogger, type Logger } from '../log.js';

/** Options every command accepts (declared on the program, read with optsWithGlobals). */
export interface GlobalOptions {
  config?: string;
  databaseUrl?: string;
  redisUrl?: string;
  schema?: string;
  prefix?: string;
  table?: string[];
  verbose?: boolean;
  logLevel?: LevelWithSilent;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

export function portNumber(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

export function globals(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

export function configFrom(command: Command, extra: Partial<ConfigOverrides> = {}): Config {
  const o = globals(command);
  const overrides: ConfigOverrides = { ...extra };
  if (o.config !== undefined) overrides.config = o.config;
  if (o.databaseUrl !== undefined) overrides.databaseUrl = o.databaseUrl;
  if (o.redisUrl !== undefined) overrides.redisUrl = o.redisUrl;
  if (o.schema !== undefined) overrides.schema = o.schema;
  if (o.prefix !== undefined) overrides.prefix = o.prefix;
  if (o.table !== undefined) overrides.tables = o.table;
  return loadConfig(overrides);
}

export function loggerFrom(command: Command): Logger {
  const o = globals(command);
  return createLogger({ level: o.logLevel ?? (o.verbose === true ? 'debug' : 'info') });
}
