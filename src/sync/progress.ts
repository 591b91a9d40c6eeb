import cliProgress from 'cli-progress';
import type { Logger } from '../log.js';
import type { CopyProgress } from './copy.js';

export interface ProgressReporter {
  update(progress: CopyProgress): void;
  stop(): void;
}

/**
 * Progress of long copies: a bar per table on a terminal (rows / estimate, rows/s, ETA);
 * elsewhere a structured log line per table every few seconds; nothing with --quiet.
 */
export function createProgress(logger: Logger, options: { quiet: boolean; tty?: boolean; intervalMs?: number }): ProgressReporter {
  if (options.quiet) return { update: () => undefined, stop: () => undefined };
  if (options.tty ?? process.stderr.isTTY === true) return barProgress();
  return logProgress(logger, options.intervalMs ?? 5000);
}

function barProgress(): ProgressReporter {
  const multi = new cliProgress.MultiBar(
    {
      format: ' {table} |{bar}| {percentage}% {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, { bar: cliProgress.SingleBar; started: number }>();
  return {
    update(p) {
      let entry = bars.get(p.table);
      if (entry === undefined) {
        entry = { bar: multi.create(p.total, 0, { table: p.table, rate: 0 }), started: performance.now() };
        bars.set(p.table, entry);
      }
      const seconds = (performance.now() - entry.started) / 1000;
      entry.bar.setTotal(p.total);
      entry.bar.update(p.rows, { table: p.table, rate: seconds > 0 ? Math.round(p.rows / seconds) : 0 });
    },
    stop: () => multi.stop(),
  };
}

function logProgress(logger: Logger, intervalMs: number): ProgressReporter {
  const tables = new Map<string, { started: number; lastLog: number; done: boolean }>();
  return {
    update(p) {
      const now = performance.now();
      let entry = tables.get(p.table);
      if (entry === undefined) {
        entry = { started: now, lastLog: now, done: false };
        tables.set(p.table, entry);
        logger.info({ table: p.table, total: p.total }, 'copy started');
      }
      const seconds = (now - entry.started) / 1000;
      const rate = seconds > 0 ? Math.round(p.rows / seconds) : 0;
      if (p.rows >= p.total && !entry.done) {
        entry.done = true;
        logger.info({ table: p.table, rows: p.rows, seconds: Number(seconds.toFixed(2)), rowsPerSecond: rate }, 'copy finished');
      } else if (now - entry.lastLog >= intervalMs) {
        entry.lastLog = now;
        const eta = rate > 0 ? Math.round((p.total - p.rows) / rate) : null;
        logger.info({ table: p.table, rows: p.rows, total: p.total, rowsPerSecond: rate, etaSeconds: eta }, 'copy progress');
      }
    },
    stop: () => undefined,
  };
}
