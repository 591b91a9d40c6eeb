import { EventEmitter } from 'node:events';
import type pg from 'pg';
import { isCluster, type RedisClient } from '../redis/cluster.js';
import { checkPool, createPool } from '../db/connect.js';
import { describePgError } from '../db/errors.js';
import { createDb, type Db } from '../db/kysely.js';
import { UserError, errorMessage } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { sql } from 'kysely';
import { connectRedis } from '../redis/connect.js';
import { writeBatch, type BatchResult } from './apply-batch.js';
import { buildApplyStatement, claimAndRead, groupFilter, MAX_KEYS_PER_JOURNAL_ROW, type AppliedBatch, type ApplyStatement } from './apply-statement.js';
import { quoteIdent } from '../sql/quote.js';
import { loadRegistry } from './registry.js';
import type { TablePlan } from './table-plan.js';
import { listenForWakeups, type WakeupListener } from './wakeups.js';
import { WritePipe } from './write-pipe.js';
import { JournalVacuum } from './journal-vacuum.js';
import { applyLockKey, leaderLockKey, wakeLockKey } from '../install/names.js';
import { randomUUID } from 'node:crypto';
import type { Fence } from '../redis/replace.js';
import { fenceLost, raiseFence, readEpoch, readLeaderToken, stateKey, writeEpoch } from '../redis/state.js';
import { finishRecopy, nextLeaderToken, readMeta, recordEpoch, startRecopy, type MetaScope } from './meta.js';
import { DEFAULT_GROUP } from '../config/load.js';
import { daemonApplicationName } from './app-names.js';
import { syncTables } from '../sync/sync.js';
import { createProgress } from '../sync/progress.js';

export interface DaemonOptions {
  databaseUrl: string;
  redisUrl: string;
  /** The install's schema; also the NOTIFY channel. */
  schema: string;
  /** Most keys claimed from the journal per batch (a single journal row with more, up to 1000, is claimed whole). */
  batchSize: number;
  /** Safety poll of the journal: NOTIFY is not durable, the journal is. */
  pollIntervalMs: number;
  /** Copy tables that were never copied (or whose options changed) while streaming. */
  syncNeverCopied?: boolean;
  /** Apply only this group's tables (see TableConfig.group); default "default". */
  group?: string;
  logger?: Logger;
}

export type DaemonRole = 'leader' | 'standby';

/** A failure the daemon recovers from by retrying; 'failure', not 'error', which would throw with no listener. */
export interface DaemonFailure {
  stage: 'batch' | 'copy';
  error: unknown;
  attempt: number;
  retryInMs: number;
}

export interface DaemonEvents {
  batch: [BatchResult];
  /** Became the leader (applies changes) or a standby (another daemon leads). */
  role: [DaemonRole];
  /** A drain found the journal empty. */
  idle: [];
  failure: [DaemonFailure];
  /** A connection was lost and is being re-established (once per attempt). */
  reconnect: [{ server: 'postgres' | 'redis'; attempt: number }];
  /** A connection is (back) up. */
  connected: ['postgres' | 'redis'];
}

const MAX_RETRY_DELAY_MS = 10_000;
/** A claim sent to PostgreSQL, and when. */
interface Claim {
  batch: Promise<AppliedBatch>;
  started: number;
}
/** A standby tries to take the lead this often; a leader that died is replaced within about this. */
const STANDBY_RETRY_MS = 1000;
/** Claims start from the journal's first row at least this often, and always before going idle. */
const FULL_SCAN_EVERY_MS = 250;
/** A drain commits at least this often (see drain). */
const COMMIT_EVERY_MS = 250;
/**
 * While busy (changes arriving without NOTIFY), drain this often: long enough that batches
 * under load carry many keys, short enough to keep latency low.
 */
const BUSY_POLL_MS = 25;
/** While busy, poll again after one millisecond per this many keys the last drain found (up to BUSY_POLL_MS). */
const BUSY_KEYS_PER_MS = 5;

/**
 * Busy polling bounds the latency of changes that skipped NOTIFY. A trickle (a few keys per
 * drain) gains nothing from waiting for a bigger batch, so the next poll comes sooner; only a
 * drain that found many keys waits the full BUSY_POLL_MS. Back off while quiet.
 */
function busyPollDelay(claimed: number, delay: number): number {
  return claimed > 0 ? Math.min(BUSY_POLL_MS, Math.max(1, Math.round(claimed / BUSY_KEYS_PER_MS))) : Math.min(delay * 2, BUSY_POLL_MS);
}

/**
 * The listen daemon: wake on NOTIFY (or the poll), then drain the journal in id order, batch
 * by batch. A batch is claimed by DELETE inside a transaction, its keys' current rows are
 * re-read and written to Redis, and only then is the transaction committed; a failure rolls
 * the claim back and the batch is retried with backoff.
 */
export class MirrorDaemon extends EventEmitter<DaemonEvents> {
  private readonly logger: Logger;
  private readonly db: Db;
  /** Opens a batch transaction and takes the shared apply lock, in one round trip. */
  private readonly beginText: string;
  /** Claims and reads a batch; rebuilt with the registry. */
  private statement: ApplyStatement | undefined;
  private generation = 0;
  private utf8Server = true;
  /** Tables with journal rows that a fresh registry still does not know (uninstalled): their rows are dropped. */
  private ignoredRels = new Set<number>();
  /** Where the next claim starts in the journal (see apply-statement), and when one last started at 0. */
  private claimFrom = 0n;
  private lastFullScan = 0;
  private plans = new Map<number, TablePlan>();
  private registryStale = false;
  private listener: WakeupListener | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private copying: Promise<void> | undefined;
  private pending = false;
  private stopping = false;
  private worker: pg.PoolClient | undefined;
  /** Whether we hold the wake lock (see goIdle). */
  private idle = false;
  private readonly wakeLock: [number, number];
  private readonly leaderLock: [number, number];
  private readonly scope: MetaScope;
  private failures = 0;
  private currentRole: DaemonRole | undefined;
  /** Set while this daemon leads: its fencing token, raised in Redis when it took the lead. */
  private fence: Fence | undefined;
  private stateKeyName = '';
  /** Names this daemon group's state in Redis (see redis/state.ts): the install id, plus the group unless default. */
  private stateId = '';
  /** Compare Redis' data generation with PostgreSQL's before the next drain (see checkRedisEpoch). */
  private epochCheckDue = true;
  private readonly vacuum: JournalVacuum;
  private readonly pipe: WritePipe;
  /** Whether batches go to Redis as MULTI ... EXEC on the pipe (see WritePipe.usable); else as script calls. */
  private pipeWrites = false;

  private constructor(
    private readonly options: DaemonOptions,
    private readonly pool: pg.Pool,
    private readonly redis: RedisClient,
  ) {
    super();
    this.logger = options.logger ?? silentLogger;
    this.db = createDb(pool);
    const [a, b] = applyLockKey(options.schema);
    // BEGIN, the shared apply lock and the claim in one round trip. synchronous_commit off: a
    // batch whose commit is lost in a server crash only comes back as journal rows, and
    // applying them again is harmless; the application's commits stay durable.
    this.beginText = `BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_catalog.pg_advisory_xact_lock_shared(${a}, ${b})`;
    this.scope = { schema: options.schema, group: options.group ?? DEFAULT_GROUP };
    this.wakeLock = wakeLockKey(options.schema, this.scope.group);
    this.leaderLock = leaderLockKey(options.schema, this.scope.group);
    this.vacuum = new JournalVacuum(pool, options.schema, this.logger);
    this.pipe = new WritePipe(redis);
  }

  /** Connects to both servers (failing fast with a clear error), loads the registry and drains. */
  static async start(options: DaemonOptions): Promise<MirrorDaemon> {
    // The worker, a copy, a journal vacuum, and one for the registry and state queries.
    const pool = createPool(options.databaseUrl, { max: 4, applicationName: daemonApplicationName(options.schema) });
    let redis: RedisClient | undefined;
    try {
      await checkPool(pool, options.databaseUrl);
      redis = await connectRedis(options.redisUrl, { persistent: true });
      const daemon = new MirrorDaemon(options, pool, redis);
      await daemon.init();
      return daemon;
    } catch (error) {
      redis?.disconnect();
      await pool.end().catch(() => undefined);
      throw describePgError(error, options.databaseUrl);
    }
  }

  private async init(): Promise<void> {
    await this.reloadRegistry();
    if (this.plans.size === 0) {
      if (this.scope.group !== DEFAULT_GROUP) {
        throw new UserError(`no mirrored table is in group "${this.scope.group}"; set "group" on tables in the config and run \`pg-redis-mirror install\`, or drop --group`);
      }
      throw new UserError(`no table is mirrored in schema "${this.options.schema}"; run \`pg-redis-mirror install --table schema.name\` first`);
    }
    const client = await this.pool.connect();
    try {
      const installId = (await readMeta(client, this.scope)).installId;
      // A named group's state (and, in a cluster, its fence keys) are the install's, suffixed.
      this.stateId = this.scope.group === DEFAULT_GROUP ? installId : `${installId}:${this.scope.group}`;
      this.stateKeyName = stateKey(this.stateId);
    } finally {
      client.release();
    }
    const pipe = await this.pipe.usable(this.stateKeyName).catch((error: unknown) => ({ usable: false, reason: errorMessage(error) }));
    if (pipe.usable) {
      this.pipeWrites = true;
      this.buildStatement();
    } else if (pipe.reason !== undefined) {
      this.logger.info({ reason: pipe.reason }, 'writing through Lua scripts (more Redis CPU per key): the daemon cannot use WATCH/MULTI/EXEC on its own connection; an ACL user needs +@transaction');
    }
    this.redis.on('error', (error: unknown) => this.logger.debug({ err: errorMessage(error) }, 'Redis connection error'));
    let redisAttempt = 0;
    this.redis.on('reconnecting', () => this.emit('reconnect', { server: 'redis', attempt: ++redisAttempt }));
    this.redis.on('ready', () => {
      redisAttempt = 0;
      this.emit('connected', 'redis');
      // A Redis that comes back may have come back empty.
      this.epochCheckDue = true;
      this.wakeNow();
    });
    this.listener = await listenForWakeups(this.options.databaseUrl, this.options.schema, this.logger, {
      onWakeup: (wakeup) => {
        if (wakeup.kind === 'reload') this.registryStale = true;
        this.wake();
      },
      // Notifications sent while disconnected are lost: drain whatever the journal holds.
      onConnected: () => {
        this.emit('connected', 'postgres');
        this.wakeNow();
      },
      onReconnect: (attempt) => this.emit('reconnect', { server: 'postgres', attempt }),
    });
    this.pollTimer = setInterval(() => {
      this.epochCheckDue = true;
      this.wake();
    }, this.options.pollIntervalMs);
    this.logger.info(
      { tables: [...this.plans.values()].map((p) => p.display), schema: this.options.schema },
      'listening; draining the journal',
    );
    this.wake();
  }

  /**
   * Exactly one daemon per install applies changes: the one holding the leader lock, a
   * session-level advisory lock on its worker connection. When that connection ends (the
   * daemon died, was killed, lost the network), PostgreSQL frees the lock and a standby takes
   * it on its next try. A new leader raises the fencing token in Redis first, so writes still
   * in flight from the old one are refused there.
   */
  private async lead(): Promise<boolean> {
    if (this.fence !== undefined) return true;
    const worker = await this.workerClient();
    const [a, b] = this.leaderLock;
    const result = await worker.query<{ ok: string }>(`SELECT pg_catalog.pg_try_advisory_lock(${a}, ${b}) AS ok`);
    if (result.rows[0]?.ok !== 't') {
      this.setRole('standby');
      return false;
    }
    const token = await nextLeaderToken(worker, this.scope, await readLeaderToken(this.redis, this.stateKeyName));
    const fence = await raiseFence(this.redis, this.stateId, token);
    if (fence === null) {
      throw new Error('a newer leader token is in Redis although this daemon holds the leader lock');
    }
    this.fence = fence;
    this.claimFrom = 0n;
    this.epochCheckDue = true;
    this.setRole('leader');
    if (this.options.syncNeverCopied === true) this.startCopy();
    return true;
  }

  private setRole(role: DaemonRole): void {
    if (this.currentRole === role) return;
    this.currentRole = role;
    if (role === 'leader') this.logger.info({ token: this.fence?.token }, 'leading: applying changes');
    else this.logger.info('standby: another daemon leads; taking over when it stops');
    this.emit('role', role);
  }

  /**
   * Redis' copy of the data generation must match PostgreSQL's. If it is gone or different,
   * Redis lost the mirror (restart without persistence, FLUSHALL, failover to an empty
   * replica): mark every table for copying, then copy while streaming on.
   */
  private async checkRedisEpoch(): Promise<void> {
    this.epochCheckDue = false;
    const worker = await this.workerClient();
    const meta = await readMeta(worker, this.scope);
    const inRedis = await readEpoch(this.redis, this.stateKeyName);
    if (meta.redisEpoch === null) {
      const epoch = randomUUID();
      await writeEpoch(this.redis, this.stateKeyName, epoch);
      await recordEpoch(worker, this.scope, epoch);
    } else if (inRedis !== meta.redisEpoch || (await fenceLost(this.redis, this.stateId))) {
      this.logger.warn({ expected: meta.redisEpoch, found: inRedis }, 'Redis lost the mirror; copying every table again while streaming');
      const epoch = randomUUID();
      await startRecopy(worker, this.scope, epoch);
      await raiseFence(this.redis, this.stateId, this.fence!.token);
      await writeEpoch(this.redis, this.stateKeyName, epoch);
      this.startCopy();
    } else if (meta.recopy) {
      this.startCopy();
    }
  }

  /** Copies tables marked never copied, beside the drain loop (one copy at a time). */
  private startCopy(): void {
    if (this.copying !== undefined || this.stopping) return;
    this.copying = this.copyNeverCopied().finally(() => {
      this.copying = undefined;
    });
  }

  /**
   * Runs beside the drain loop: the apply lock keeps copy chunks and batches apart, so rows
   * changed during the copy end up current. Retries with backoff until done or stopped.
   */
  private async copyNeverCopied(): Promise<void> {
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        const progress = createProgress(this.logger, { quiet: false, tty: false, intervalMs: 5000 });
        const results = await syncTables(this.pool, this.redis, {
          schema: this.options.schema,
          tables: [...this.plans.values()].map((p) => ({ schema: p.schema, name: p.name })),
          onlyNeverCopied: true,
          onProgress: (p) => progress.update(p),
          shouldStop: () => this.stopping,
        });
        if (results.every((r) => r.complete)) {
          if (results.length > 0) this.logger.info({ tables: results.map((r) => r.table) }, 'copy done');
          const client = await this.pool.connect();
          try {
            await finishRecopy(client, this.scope);
          } finally {
            client.release();
          }
        }
        return;
      } catch (error) {
        const delay = Math.min(1000 * 2 ** Math.min(attempt, 5), 30_000);
        this.logger.error({ err: errorMessage(error), retryInMs: delay }, 'copy failed; will retry');
        this.emit('failure', { stage: 'copy', error, attempt, retryInMs: delay });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private async reloadRegistry(): Promise<void> {
    const registry = await loadRegistry(this.db, this.options.schema, this.scope.group);
    for (const problem of registry.problems) this.logger.warn(problem);
    this.plans = registry.plans;
    this.registryStale = false;
    this.ignoredRels.clear();
    const encoding = await sql<{ encoding: string }>`SELECT pg_catalog.current_setting('server_encoding') AS encoding`.execute(this.db);
    this.utf8Server = encoding.rows[0]?.encoding === 'UTF8';
    this.buildStatement();
  }

  private buildStatement(): void {
    this.statement = buildApplyStatement({
      toolSchema: this.options.schema,
      plans: [...this.plans.values()],
      maxKeys: this.options.batchSize,
      generation: ++this.generation,
      utf8Server: this.utf8Server,
      group: this.scope.group,
      writes: this.pipeWrites ? 'commands' : isCluster(this.redis) ? 'rows' : 'calls',
    });
  }

  /** A server is back: retry now rather than when the backoff would have. */
  private wakeNow(): void {
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.wake();
  }

  /** Schedules a drain; calls while one runs make it go around once more. */
  wake(): void {
    this.pending = true;
    if (this.loop === undefined && this.retryTimer === undefined && !this.stopping) {
      this.loop = this.runLoop().finally(() => {
        this.loop = undefined;
      });
    }
  }

  private async runLoop(): Promise<void> {
    while (this.pending && !this.stopping) {
      this.pending = false;
      try {
        if (!(await this.lead())) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.wake();
          }, STANDBY_RETRY_MS);
          return;
        }
        // drain() gives the wake lock back in its first round trip.
        await this.drain();
        await this.goIdle();
        if (this.failures > 0) this.logger.info({ after: this.failures }, 'recovered; journal drained');
        this.failures = 0;
      } catch (error) {
        this.failures += 1;
        this.dropWorker(error);
        const delay = Math.min(250 * 2 ** Math.min(this.failures, 8), MAX_RETRY_DELAY_MS);
        this.logger.error({ err: errorMessage(error), attempt: this.failures, retryInMs: delay }, 'batch failed; journal kept, will retry');
        this.emit('failure', { stage: 'batch', error, attempt: this.failures, retryInMs: delay });
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.wake();
        }, delay);
        return;
      }
    }
  }

  /**
   * Applies batches until the journal has nothing visible left; returns the keys claimed.
   *
   * Batches are pipelined inside one transaction: the claim of batch N+1 is asked for as soon
   * as batch N arrives, before N is written, so PostgreSQL claims and re-reads N+1 while Redis
   * writes N (PostgreSQL's share of a batch is the larger one; waiting for each write had left
   * it idle a sixth of a drain). Order is kept because the re-read of N+1 sees at least what
   * N saw, and Redis runs one connection's commands in the order sent. Nothing is committed
   * until every batch claimed in the transaction is in Redis, so a failure anywhere rolls all
   * of them back into the journal; no claim is in flight at a COMMIT. The transaction is
   * committed at least every COMMIT_EVERY_MS, which bounds what a retry repeats and how long
   * copies wait.
   */
  private async drain(options: { fullScan?: boolean } = {}): Promise<number> {
    const client = await this.workerClient();
    if (this.epochCheckDue) await this.checkRedisEpoch();
    let fullScan = options.fullScan === true || performance.now() - this.lastFullScan >= FULL_SCAN_EVERY_MS;
    let total = 0;
    let open = false;
    let opened = 0;
    let writing: Promise<void> | undefined;
    let reading: Claim | undefined;
    let results: BatchResult[] = [];
    const claimedAt = new Map<BatchResult, number>();
    const commit = async (): Promise<void> => {
      await writing;
      writing = undefined;
      await client.query('COMMIT');
      open = false;
      const committed = performance.now();
      for (const result of results) {
        result.durationMs = committed - (claimedAt.get(result) ?? committed);
        this.emit('batch', result);
      }
      this.vacuum.deletedRows(results.reduce((rows, result) => rows + result.entries, 0));
      claimedAt.clear();
      results = [];
    };
    const claim = (): Claim => {
      // BEGIN goes in the same round trip as the first claim, and so does giving the wake lock
      // back when waking from idle (off the path of the change that woke us): a round trip
      // of its own was a fifth of a single change's latency.
      let begin = '';
      if (!open) {
        const [a, b] = this.wakeLock;
        begin = `${this.idle ? `SELECT pg_catalog.pg_advisory_unlock(${a}, ${b}); ` : ''}${this.beginText}; `;
        // Set first: if the round trip fails after BEGIN, the catch below rolls back.
        this.idle = false;
        open = true;
        opened = performance.now();
      }
      if (fullScan) this.lastFullScan = performance.now();
      const started = performance.now();
      const batch = claimAndRead(client, this.statement!, this.plans, fullScan ? 0n : this.claimFrom, begin);
      fullScan = false;
      // Awaited in turn; until then a rejection must not count as unhandled.
      batch.catch(() => undefined);
      return { batch, started };
    };
    try {
      for (;;) {
        // A claim in flight is written before stopping: its rows are deleted in this transaction.
        if (this.stopping && reading === undefined) break;
        if (this.registryStale) await this.reloadRegistry();
        const current = reading ?? claim();
        reading = undefined;
        const batch = await current.batch;
        if (batch.lastId !== null && batch.lastId >= this.claimFrom) this.claimFrom = batch.lastId + 1n;
        if (batch.claimedKeys === 0) break;
        if (batch.unknown.some((rel) => !this.ignoredRels.has(rel))) {
          // Installed since the statement was built: claim these rows again with one that knows them.
          await writing?.catch(() => undefined);
          writing = undefined;
          await client.query('ROLLBACK');
          open = false;
          results = [];
          total = 0;
          this.claimFrom = 0n;
          fullScan = true;
          await this.reloadRegistry();
          for (const rel of batch.unknown) if (!this.plans.has(rel)) this.ignoredRels.add(rel);
          continue;
        }
        batch.result.skipped = batch.unknown.length;
        const claimed = batch.claimedKeys;
        total += claimed;
        // A claim stops before a journal row that would carry it past the batch size, so a
        // short batch alone does not mean the journal is empty.
        const drained = claimed + MAX_KEYS_PER_JOURNAL_ROW <= this.options.batchSize;
        const commitDue = performance.now() - opened >= COMMIT_EVERY_MS;
        if (!drained && !commitDue && !this.stopping && !this.registryStale) reading = claim();
        await writing;
        writing = writeBatch(this.redis, batch, this.fence!, this.pipeWrites ? this.pipe : undefined);
        writing.catch(() => undefined);
        results.push(batch.result);
        claimedAt.set(batch.result, current.started);
        this.logger.debug(batch.result, 'batch read');
        if (drained) break;
        if (commitDue) await commit();
      }
      if (open) await commit();
      return total;
    } catch (error) {
      await reading?.batch.catch(() => undefined);
      await writing?.catch(() => undefined);
      if (open) await client.query('ROLLBACK').catch(() => undefined);
      // The claimed rows are back in the journal, below where the next claim would start.
      this.claimFrom = 0n;
      throw error;
    }
  }

  /**
   * Takes the wake lock, which tells capture functions to NOTIFY. It is free only when no
   * transaction that skipped NOTIFY (having seen us busy) is still open; once it is ours, one
   * more drain catches whatever those transactions committed. Until then, poll briefly.
   */
  private async goIdle(): Promise<void> {
    let delay = 1;
    // Keys the last poll found.
    let claimed = 0;
    while (!this.stopping) {
      let fullScan = false;
      // A poll that found many keys is followed by one that finds more: under steady writes
      // some transaction nearly always holds the lock, and trying it anyway was a round trip
      // per poll. A drain that emptied a big statement's journal rows is not a poll.
      const state = claimed >= BUSY_KEYS_PER_MS * BUSY_POLL_MS ? { idle: false, empty: false } : await this.tryIdle();
      if (state.idle) {
        if (state.empty) {
          this.emit('idle');
          return;
        }
        // drain() gives the wake lock back in its first round trip. What is there may lie below
        // where claims start (see apply-statement).
        fullScan = true;
      } else {
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
      claimed = await this.drain({ fullScan });
      delay = busyPollDelay(claimed, delay);
    }
  }

  /**
   * Takes the wake lock, and if that worked, looks whether this group has a committed journal
   * row left (at all, wherever claims start): one light query instead of a claim, since the
   * common answer is "nothing". Both in one round trip, as two statements: the look then takes
   * its snapshot after the lock, when every transaction that skipped NOTIFY has ended. The
   * first leaves its answer in a session setting, so that the look is not run while busy (it
   * walks the journal index's entries of rows deleted since the last vacuum).
   */
  private async tryIdle(): Promise<{ idle: boolean; empty: boolean }> {
    const worker = await this.workerClient();
    const [a, b] = this.wakeLock;
    const locked = `pg_catalog.current_setting('pg_redis_mirror.idle')::bool`;
    const text =
      `SELECT pg_catalog.set_config('pg_redis_mirror.idle', ${this.idle ? 'true' : `pg_catalog.pg_try_advisory_lock(${a}, ${b})`}::text, false); ` +
      `SELECT ${locked}::text, CASE WHEN ${locked} THEN NOT EXISTS (SELECT FROM ${quoteIdent(this.options.schema)}.journal WHERE ${groupFilter(this.options.schema, this.scope.group)}) END::text`;
    const results = (await worker.query<[string, string | null]>({ text, rowMode: 'array' })) as unknown as pg.QueryResult<[string, string | null]>[];
    const row = results[results.length - 1]?.rows[0];
    this.idle = row?.[0] === 'true';
    return { idle: this.idle, empty: row?.[1] === 'true' };
  }

  /** One connection for batches and the wake lock, so the lock lives exactly as long as it. */
  private async workerClient(): Promise<pg.PoolClient> {
    if (this.worker === undefined) {
      const client = await this.pool.connect();
      // The pool stops listening for errors of a client it has handed out, and this one is
      // held while the daemon sleeps: a session ended by a server restart or
      // pg_terminate_backend would be an unhandled 'error' that kills the process. Its wake
      // lock went with the session, so triggers now skip NOTIFY: drain at once on a new one.
      client.on('error', (error: Error) => {
        if (this.worker !== client) return;
        this.logger.warn({ err: errorMessage(error) }, 'PostgreSQL session of the worker lost; reconnecting');
        this.dropWorker(error);
        this.wake();
      });
      // The claim statement takes the journal id to start at as a parameter, and with a custom
      // plan for each value PostgreSQL would plan the whole (large) statement every batch.
      // The generic plan is made once, with the journal's statistics of that moment: a journal
      // that looked small (it is mostly empty, and its index bloats with churn) got a plan that
      // reads all of its pages on every claim, milliseconds per batch under steady load, and a
      // backlog of millions would be read whole per batch. Claims start at a journal id and
      // read a few rows from there: only its index does that well. No JIT: compiling the large
      // statement took far longer than running it, on every execution of a costly-looking plan.
      try {
        await client.query('SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; SET jit = off');
      } catch (error) {
        client.release(error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
      this.worker = client;
    }
    return this.worker;
  }

  private dropWorker(error: unknown): void {
    if (this.worker === undefined) return;
    // Ending the session also frees the wake lock: triggers stop notifying until we are back,
    // and the poll and the drain at reconnect cover the meantime.
    this.worker.release(error instanceof Error ? error : new Error(String(error)));
    this.worker = undefined;
    this.idle = false;
    // So is the leader lock: another daemon may lead by the time we are back.
    this.fence = undefined;
  }

  /** Finishes the batch in flight (its journal rows are then committed), then disconnects. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.loop;
    await this.copying;
    await this.vacuum.stop();
    this.worker?.release();
    this.worker = undefined;
    await this.listener?.close().catch(() => undefined);
    this.pipe.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
    await this.pool.end().catch(() => undefined);
    this.logger.info('stopped');
  }

  /** Whether this daemon applies the journal ('leader') or waits to take over ('standby'). */
  get role(): DaemonRole {
    return this.currentRole ?? 'standby';
  }

  get tables(): TablePlan[] {
    return [...this.plans.values()];
  }
}
