import type pg from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DaemonEvents, DaemonRole, MirrorDaemon } from '../daemon/daemon.js';
import { errorMessage } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { sampleJournal } from './journal-sample.js';

const PREFIX = 'pg_redis_mirror_';

export interface Health {
  ok: boolean;
  /** 'starting', 'leader', 'standby', 'failing', 'reconnecting', 'stalled' or 'stopped'. */
  state: string;
  role: DaemonRole | null;
  /** What is wrong, when not ok. */
  reason?: string;
}

export interface MirrorMetricsOptions {
  /** For the journal backlog and lag gauges (a pool of the metrics' own: a scrape never waits for a batch). */
  pool: pg.Pool;
  schema: string;
  /** The journal is sampled at most this often, however often it is scraped. */
  sampleIntervalMs?: number;
  /**
   * A leader that has neither finished a batch nor found the journal empty for this long is
   * reported unhealthy (a hung query or connection). It goes idle at least every poll interval.
   */
  stallAfterMs?: number;
  logger?: Logger;
}

/** The listener type node's typed EventEmitter expects (it distributes over the event name). */
type DaemonListener<E extends keyof DaemonEvents> = E extends keyof DaemonEvents ? (DaemonEvents[E] extends unknown[] ? (...args: DaemonEvents[E]) => void : never) : never;

/**
 * Prometheus metrics and health of one daemon, fed by its events. Each instance has a registry
 * of its own, so several daemons in one process (tests, a library user) do not collide.
 */
export class MirrorMetrics {
  readonly registry = new Registry();
  private readonly changes: Counter<'table'>;
  private readonly batchSeconds: Histogram;
  private readonly backlog: Gauge;
  private readonly lag: Gauge;
  private readonly reconnects: Counter<'server'>;
  private readonly errors: Counter<'stage'>;
  private readonly leader: Gauge;
  private readonly logger: Logger;
  private readonly sampleIntervalMs: number;
  private readonly stallAfterMs: number;
  private daemon: MirrorDaemon | undefined;
  private unfollow: (() => void)[] = [];
  private role: DaemonRole | null = null;
  private stopped = false;
  /** The last batch failed; cleared by the next batch or empty drain. */
  private failing: string | undefined;
  /** Connections being re-established; each cleared when its server is back (or a batch got through both). */
  private reconnecting = new Map<'postgres' | 'redis', string>();
  private lastProgress = performance.now();
  private lastSample = -Infinity;
  private sampling: Promise<void> | undefined;

  constructor(private readonly options: MirrorMetricsOptions) {
    this.logger = options.logger ?? silentLogger;
    this.sampleIntervalMs = options.sampleIntervalMs ?? 5000;
    this.stallAfterMs = options.stallAfterMs ?? 60_000;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    this.changes = new Counter({
      name: `${PREFIX}changes_applied_total`,
      help: 'Keys written to (or deleted from) Redis by the daemon, per mirrored table',
      labelNames: ['table'],
      registers,
    });
    this.batchSeconds = new Histogram({
      name: `${PREFIX}batch_duration_seconds`,
      help: 'Time from claiming a batch in the journal to committing it after its Redis writes',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.backlog = new Gauge({
      name: `${PREFIX}journal_backlog_keys`,
      help: `Changed keys waiting in the journal (sampled at most every ${this.sampleIntervalMs / 1000} s; extrapolated beyond 10000 journal rows)`,
      registers,
    });
    this.lag = new Gauge({
      name: `${PREFIX}lag_seconds`,
      help: 'Age of the oldest change not yet applied to Redis; 0 when the journal is empty',
      registers,
    });
    this.reconnects = new Counter({
      name: `${PREFIX}reconnects_total`,
      help: 'Attempts to re-establish a lost connection (postgres: the LISTEN connection; redis)',
      labelNames: ['server'],
      registers,
    });
    this.errors = new Counter({
      name: `${PREFIX}errors_total`,
      help: 'Failed batches (rolled back into the journal and retried) and failed initial copies',
      labelNames: ['stage'],
      registers,
    });
    this.leader = new Gauge({ name: `${PREFIX}leader`, help: '1 while this daemon applies the journal, 0 while it stands by', registers });
    for (const server of ['postgres', 'redis']) this.reconnects.labels(server).inc(0);
    for (const stage of ['batch', 'copy']) this.errors.labels(stage).inc(0);
  }

  /** Follows a started daemon's events until detach(). */
  attach(daemon: MirrorDaemon): void {
    this.detach();
    this.daemon = daemon;
    this.stopped = false;
    this.setRole(daemon.role);
    // Every table shows up at 0 before its first change, so rate() works from the start.
    for (const plan of daemon.tables) this.changes.labels(plan.display).inc(0);
    this.failing = undefined;
    this.reconnecting.clear();
    const progress = (): void => {
      this.lastProgress = performance.now();
      this.failing = undefined;
    };
    this.follow(daemon, 'batch', (result) => {
      progress();
      this.reconnecting.clear();
      for (const [table, keys] of Object.entries(result.tables)) this.changes.labels(table).inc(keys);
      this.batchSeconds.observe(result.durationMs / 1000);
    });
    // An empty drain proves PostgreSQL works, not Redis (it wrote nothing there).
    this.follow(daemon, 'idle', () => {
      progress();
      this.reconnecting.delete('postgres');
      // The drain just saw an empty journal: no need to wait for the next sample.
      this.backlog.set(0);
      this.lag.set(0);
    });
    this.follow(daemon, 'failure', (failure) => {
      this.errors.labels(failure.stage).inc();
      if (failure.stage === 'batch') this.failing = `batch failed (attempt ${failure.attempt}): ${errorMessage(failure.error)}`;
    });
    this.follow(daemon, 'reconnect', ({ server, attempt }) => {
      this.reconnects.labels(server).inc();
      this.reconnecting.set(server, `reconnecting to ${server === 'postgres' ? 'PostgreSQL' : 'Redis'} (attempt ${attempt})`);
    });
    this.follow(daemon, 'connected', (server) => {
      this.reconnecting.delete(server);
    });
    this.follow(daemon, 'role', (role) => {
      this.lastProgress = performance.now();
      this.setRole(role);
    });
  }

  private follow<E extends keyof DaemonEvents>(daemon: MirrorDaemon, event: E, listener: DaemonListener<E>): void {
    daemon.on(event, listener);
    this.unfollow.push(() => daemon.off(event, listener));
  }

  /** Stops following the daemon; health reports 'stopped' from then on. */
  detach(): void {
    for (const unfollow of this.unfollow) unfollow();
    this.unfollow = [];
    if (this.daemon !== undefined) this.stopped = true;
    this.daemon = undefined;
  }

  private setRole(role: DaemonRole): void {
    this.role = role;
    this.leader.set(role === 'leader' ? 1 : 0);
  }

  health(): Health {
    if (this.daemon === undefined) {
      return { ok: false, state: this.stopped ? 'stopped' : 'starting', role: null, reason: this.stopped ? 'the daemon has stopped' : 'the daemon is starting' };
    }
    if (this.failing !== undefined) return { ok: false, state: 'failing', role: this.role, reason: this.failing };
    const reconnecting = [...this.reconnecting.values()];
    if (reconnecting.length > 0) return { ok: false, state: 'reconnecting', role: this.role, reason: reconnecting.join('; ') };
    const silentMs = performance.now() - this.lastProgress;
    if (this.role === 'leader' && silentMs > this.stallAfterMs) {
      return { ok: false, state: 'stalled', role: this.role, reason: `no batch finished and no empty journal seen for ${Math.round(silentMs / 1000)} s` };
    }
    return { ok: true, state: this.role ?? 'starting', role: this.role };
  }

  /** The exposition text, with the journal gauges refreshed if their sample is old. */
  async render(): Promise<string> {
    await this.refreshJournal();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One query at a time, at most every sampleIntervalMs; a failure keeps the last values. */
  private refreshJournal(): Promise<void> {
    if (this.sampling !== undefined) return this.sampling;
    if (performance.now() - this.lastSample < this.sampleIntervalMs) return Promise.resolve();
    this.sampling = sampleJournal(this.options.pool, this.options.schema)
      .then((sample) => {
        this.backlog.set(sample.keys);
        this.lag.set(sample.lagSeconds);
      })
      .catch((error: unknown) => this.logger.warn({ err: errorMessage(error) }, 'metrics: cannot sample the journal'))
      .finally(() => {
        this.lastSample = performance.now();
        this.sampling = undefined;
      });
    return this.sampling;
  }
}
