import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type pg from 'pg';
import { createPool } from '../db/connect.js';
import type { MirrorDaemon } from '../daemon/daemon.js';
import { UserError, errorMessage } from '../errors.js';
import { fitIdentifier } from '../install/names.js';
import { silentLogger, type Logger } from '../log.js';
import { MirrorMetrics } from './metrics.js';

export interface MetricsServerOptions {
  /** 0 picks a free port (see `port`). */
  port: number;
  /** Default: every interface, so that probes from outside the host (Kubernetes) reach it. */
  host?: string;
  databaseUrl: string;
  /** The install's schema, whose journal is sampled. */
  schema: string;
  sampleIntervalMs?: number;
  stallAfterMs?: number;
  logger?: Logger;
}

/**
 * `/healthz` and `/metrics` over HTTP. Started before the daemon, so that a port in use stops
 * `listen` before anything else happens; `attach` then follows the daemon.
 */
export class MetricsServer {
  private constructor(
    private readonly server: Server,
    private readonly pool: pg.Pool,
    readonly metrics: MirrorMetrics,
  ) {}

  static async start(options: MetricsServerOptions): Promise<MetricsServer> {
    const logger = options.logger ?? silentLogger;
    const pool = createPool(options.databaseUrl, { max: 1, applicationName: fitIdentifier(`pg-redis-mirror metrics ${options.schema}`) });
    const metrics = new MirrorMetrics({
      pool,
      schema: options.schema,
      logger,
      ...(options.sampleIntervalMs === undefined ? {} : { sampleIntervalMs: options.sampleIntervalMs }),
      ...(options.stallAfterMs === undefined ? {} : { stallAfterMs: options.stallAfterMs }),
    });
    const server = createServer((request, response) => {
      handle(metrics, request, response).catch((error: unknown) => {
        logger.warn({ err: errorMessage(error), url: request.url }, 'metrics: request failed');
        if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('internal error\n');
      });
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw describeListenError(error, options.port, options.host);
    }
    server.on('error', (error) => logger.error({ err: errorMessage(error) }, 'metrics server error'));
    const instance = new MetricsServer(server, pool, metrics);
    logger.info({ port: instance.port, host: options.host ?? '*' }, 'serving /metrics and /healthz');
    return instance;
  }

  /** The port listened on (the one picked when 0 was asked for). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  attach(daemon: MirrorDaemon): void {
    this.metrics.attach(daemon);
  }

  /** Stops serving: open keep-alive connections are closed too, so this does not wait for scrapers. */
  async close(): Promise<void> {
    this.metrics.detach();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    await this.pool.end().catch(() => undefined);
  }
}

async function handle(metrics: MirrorMetrics, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    response.end('method not allowed\n');
    return;
  }
  if (path === '/healthz') {
    const health = metrics.health();
    const body = JSON.stringify({ status: health.ok ? 'ok' : 'unavailable', ...health });
    // A probe must see the state now, never a cached answer.
    response.writeHead(health.ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : `${body}\n`);
    return;
  }
  if (path === '/metrics') {
    const text = await metrics.render();
    response.writeHead(200, { 'content-type': metrics.contentType });
    response.end(request.method === 'HEAD' ? undefined : text);
    return;
  }
  response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  response.end('not found: try /metrics or /healthz\n');
}

function describeListenError(error: unknown, port: number, host: string | undefined): Error {
  const code = (error as { code?: string }).code;
  const where = `${host ?? '*'}:${port}`;
  if (code === 'EADDRINUSE') return new UserError(`metrics port ${where} is already in use; choose another with --metrics-port (or "metricsPort" in the config)`, { cause: error });
  if (code === 'EACCES') return new UserError(`not allowed to listen on ${where} for metrics; ports below 1024 need privileges, choose another with --metrics-port`, { cause: error });
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') return new UserError(`cannot listen on ${where} for metrics: no such local address; check --metrics-host`, { cause: error });
  return error instanceof Error ? error : new Error(String(error));
}
