import type pg from 'pg';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { quoteIdent } from '../sql/quote.js';

/** Journal rows the daemon deletes before it vacuums the journal, and the least time between two vacuums. */
const VACUUM_AFTER_ROWS = 10_000;
const VACUUM_EVERY_MS = 2000;

/**
 * Vacuums the journal after the daemon has deleted many of its rows. Deleted rows stay in the
 * journal's id index until a vacuum, and the daemon's look at the whole journal (before going
 * idle, and a full claim now and then) walks past every one of them: with tens of thousands
 * that took milliseconds, on the path of the next change. Autovacuum visits a table at most
 * once a minute (autovacuum_naptime), and may be off; a queue churns much faster than that.
 * VACUUM takes a lock that neither the application's writes nor the daemon's wait for. A role
 * that does not own the journal cannot vacuum it: PostgreSQL then skips it with a warning, and
 * we stop trying and leave it to autovacuum.
 */
export class JournalVacuum {
  private deleted = 0;
  private last = 0;
  private running: Promise<void> | undefined;
  private refused = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
    private readonly logger: Logger,
  ) {}

  /** Counts committed journal deletions, and starts a vacuum in the background when due. */
  deletedRows(rows: number): void {
    this.deleted += rows;
    if (this.refused || this.running !== undefined || this.deleted < VACUUM_AFTER_ROWS) return;
    if (performance.now() - this.last < VACUUM_EVERY_MS) return;
    this.deleted = 0;
    this.last = performance.now();
    this.running = this.vacuum().finally(() => {
      this.running = undefined;
    });
  }

  /** Waits for a vacuum in flight. */
  async stop(): Promise<void> {
    this.refused = true;
    await this.running;
  }

  private async vacuum(): Promise<void> {
    let client: pg.PoolClient | undefined;
    let skipped = false;
    const onNotice = (notice: { message?: string }): void => {
      if (notice.message?.includes('skipping') === true) skipped = true;
    };
    try {
      client = await this.pool.connect();
      client.on('notice', onNotice);
      const started = performance.now();
      await client.query(`VACUUM ${quoteIdent(this.schema)}.journal`);
      this.logger.debug({ ms: Math.round(performance.now() - started) }, 'vacuumed the journal');
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not vacuum the journal; will try again');
    } finally {
      client?.off('notice', onNotice);
      client?.release();
    }
    if (skipped) {
      this.refused = true;
      this.logger.warn(
        `the daemon's role cannot VACUUM ${this.schema}.journal (only its owner can), so it is left to autovacuum; make that role the journal's owner, or keep autovacuum on`,
      );
    }
  }
}
