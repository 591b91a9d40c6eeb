/**
 * The library under the CLI: `import { install, MirrorDaemon } from 'pg-redis-mirror'`.
 * Every command is a thin layer over these.
 */
export { loadConfig, resolveConfig, DEFAULTS, type Config, type ConfigOverrides, type TableConfig } from './config/load.js';
export { parseTableName, formatTableName, type TableName } from './config/table-name.js';
export { install, uninstall, renderPlanned, type PlanResult, type TableChange } from './install/install.js';
export { MirrorDaemon, type DaemonOptions, type DaemonEvents, type DaemonRole, type DaemonFailure } from './daemon/daemon.js';
export { MetricsServer, type MetricsServerOptions } from './metrics/server.js';
export { MirrorMetrics, type Health } from './metrics/metrics.js';
export { readBacklog, waitForEmptyJournal, type Backlog } from './daemon/backlog.js';
export { syncTables, type SyncOptions } from './sync/sync.js';
export { verifyMirror, isClean, type VerifyMirrorOptions } from './verify/verify.js';
export type { TableVerifyReport } from './verify/compare.js';
export { readStatus } from './status/status.js';
export { createPool } from './db/connect.js';
export { connectRedis } from './redis/connect.js';
export { UserError } from './errors.js';
