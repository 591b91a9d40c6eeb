import { pino, type Logger, type LevelWithSilent, type LoggerOptions as PinoOptions } from 'pino';
import pretty from 'pino-pretty';
import { redactUrl } from './db/errors.js';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Human-readable lines; by default when stderr is a terminal. JSON otherwise. */
  pretty?: boolean;
}

/** Logs go to stderr so that stdout stays for a command's own output (`sql`, `--json`). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const usePretty = options.pretty ?? process.stderr.isTTY === true;
  if (usePretty) {
    return pino({ level, ...redacting }, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }));
  }
  return pino({ level, base: { name: 'pg-redis-mirror' }, ...redacting }, pino.destination({ dest: 2, sync: true }));
}

/**
 * Hides URL passwords in every message and logged string, whatever reported them (a driver's
 * error text can quote a connection string), so no log line can carry a password.
 */
const redacting: Pick<PinoOptions, 'formatters' | 'hooks'> = {
  formatters: { log: (object) => redactValue(object) as Record<string, unknown> },
  hooks: {
    logMethod(args, method) {
      method.apply(this, args.map((arg) => redactValue(arg)) as Parameters<typeof method>);
    },
  },
};

function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.includes('://') ? redactUrl(value) : value;
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, depth + 1)]));
}

export const silentLogger: Logger = pino({ level: 'silent' });
