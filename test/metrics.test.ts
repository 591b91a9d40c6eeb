/**
 * Operations: /metrics and /healthz of a running daemon (library and `listen --metrics-port`),
 * and the log output of the CLI (JSON off a terminal, readable on one, levels honoured).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { install } from '../src/install/install.js';
import { MetricsServer } from '../src/metrics/server.js';
import { connectRedis } from '../src/redis/connect.js';
import { BIN, spawnCli, runCli, type RunningCli } from './helpers/cli.js';
import { TestRedisServer, freePort } from './helpers/redis-server.js';
import { createScratch, expectMirrorClean, settle, sleep, startDaemon, waitUntil, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
const daemons: MirrorDaemon[] = [];
const servers: MetricsServer[] = [];
const children: RunningCli[] = [];

beforeAll(async () => {
  scratch = await createScratch('metrics');
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await c.exited;
  }
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await scratch.cleanup();
});

/** The value of one sample in Prometheus text format; undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? '' : `{${labels}}`} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
}

async function health(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('metrics and health (library)', () => {
  it('counts changes per table, times batches, samples backlog and lag, and follows the daemon', async () => {
    await scratch.pool.query(`CREATE TABLE m_a (id int PRIMARY KEY, v text); CREATE TABLE "M b" (id int PRIMARY KEY, v text)`);
    const config = scratch.config(['public.m_a', 'public."M b"'], { schema: 'mirror_metrics' });
    await install(config, scratch.pool);
    const server = await MetricsServer.start({ port: 0, host: '127.0.0.1', databaseUrl: scratch.databaseUrl, schema: config.schema, sampleIntervalMs: 0 });
    servers.push(server);
    expect(await health(server.port)).toMatchObject({ status: 503, body: { status: 'unavailable', state: 'starting' } });

    const daemon = await startDaemon(config);
    daemons.push(daemon);
    server.attach(daemon);
    // It leads once it has taken the leader lock, right after starting.
    await waitUntil('the daemon leads', async () => (await health(server.port)).body.role === 'leader');
    expect(await health(server.port)).toEqual({ status: 200, body: { status: 'ok', ok: true, state: 'leader', role: 'leader' } });
    let text = await scrape(server.port);
    expect(sample(text, 'pg_redis_mirror_changes_applied_total', 'table="public.m_a"')).toBe(0);
    expect(sample(text, 'pg_redis_mirror_changes_applied_total', 'table="public.M b"')).toBe(0);
    expect(sample(text, 'pg_redis_mirror_leader')).toBe(1);

    // Settled one by one: a batch writes each key once, however often it changed.
    await scratch.pool.query(`INSERT INTO m_a SELECT g, 'x' FROM generate_series(1, 10) g`);
    await settle(scratch, config);
    for (let i = 1; i <= 3; i++) await scratch.pool.query(`INSERT INTO "M b" VALUES ($1, 'y')`, [i]);
    await settle(scratch, config);
    await scratch.pool.query(`UPDATE m_a SET v = 'z' WHERE id <= 4`);
    await settle(scratch, config);
    await scratch.pool.query(`DELETE FROM "M b" WHERE id = 3`);
    await settle(scratch, config);
    // Events follow each COMMIT, which another session may see first: wait for the counters.
    await waitUntil('the batches to be counted', async () => {
      const t = await scrape(server.port);
      return sample(t, 'pg_redis_mirror_changes_applied_total', 'table="public.m_a"') === 14 && sample(t, 'pg_redis_mirror_changes_applied_total', 'table="public.M b"') === 4;
    });
    text = await scrape(server.port);
    expect(sample(text, 'pg_redis_mirror_changes_applied_total', 'table="public.M b"')).toBe(4);
    const batches = sample(text, 'pg_redis_mirror_batch_duration_seconds_count')!;
    expect(batches).toBeGreaterThanOrEqual(2);
    const seconds = sample(text, 'pg_redis_mirror_batch_duration_seconds_sum')!;
    expect(seconds).toBeGreaterThan(0);
    expect(seconds / batches).toBeLessThan(5);
    expect(sample(text, 'pg_redis_mirror_journal_backlog_keys')).toBe(0);
    expect(sample(text, 'pg_redis_mirror_lag_seconds')).toBe(0);
    expect(sample(text, 'pg_redis_mirror_errors_total', 'stage="batch"')).toBe(0);
    expect(sample(text, 'pg_redis_mirror_reconnects_total', 'server="postgres"')).toBe(0);
    await expectMirrorClean(scratch, config);

    // Daemon stopped: changes wait in the journal, and the gauges say how many and how old.
    await daemon.stop();
    daemons.splice(0);
    server.metrics.detach();
    expect(await health(server.port)).toMatchObject({ status: 503, body: { status: 'unavailable', state: 'stopped' } });
    await scratch.pool.query(`INSERT INTO m_a SELECT g, 'late' FROM generate_series(100, 104) g`);
    await scratch.pool.query(`INSERT INTO "M b" VALUES (100, 'late')`);
    await sleep(1200);
    text = await scrape(server.port);
    expect(sample(text, 'pg_redis_mirror_journal_backlog_keys')).toBe(6);
    const lag = sample(text, 'pg_redis_mirror_lag_seconds')!;
    expect(lag).toBeGreaterThanOrEqual(1);
    expect(lag).toBeLessThan(30);

    // A new daemon drains them; the counters carry on from where they were.
    const second = await startDaemon(config);
    daemons.push(second);
    server.attach(second);
    expect((await health(server.port)).status).toBe(200);
    await settle(scratch, config);
    await waitUntil('the late batch to be counted', async () => {
      const t = await scrape(server.port);
      return sample(t, 'pg_redis_mirror_changes_applied_total', 'table="public.m_a"') === 19 && sample(t, 'pg_redis_mirror_changes_applied_total', 'table="public.M b"') === 5;
    });
    text = await scrape(server.port);
    expect(sample(text, 'pg_redis_mirror_changes_applied_total', 'table="public.M b"')).toBe(5);
    expect(sample(text, 'pg_redis_mirror_journal_backlog_keys')).toBe(0);
    expect(sample(text, 'pg_redis_mirror_lag_seconds')).toBe(0);
    await expectMirrorClean(scratch, config);

    expect((await fetch(`http://127.0.0.1:${server.port}/nope`)).status).toBe(404);
    await second.stop();
    daemons.splice(0);
    const port = server.port;
    await server.close();
    servers.splice(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('reports a daemon that cannot write Redis as unavailable, counts errors and reconnects, and recovers', async () => {
    const redisServer = await TestRedisServer.start();
    try {
      await scratch.pool.query(`CREATE TABLE m_fail (id int PRIMARY KEY, v text)`);
      const config = scratch.config(['public.m_fail'], { schema: 'mirror_metrics_fail', redisUrl: redisServer.url });
      await install(config, scratch.pool);
      const server = await MetricsServer.start({ port: 0, host: '127.0.0.1', databaseUrl: scratch.databaseUrl, schema: config.schema, sampleIntervalMs: 0 });
      servers.push(server);
      const daemon = await startDaemon(config, { pollIntervalMs: 200 });
      daemons.push(daemon);
      server.attach(daemon);
      expect((await health(server.port)).status).toBe(200);

      await redisServer.stop();
      await scratch.pool.query(`INSERT INTO m_fail VALUES (1, 'a')`);
      await waitUntil('healthz to turn 503', async () => (await health(server.port)).status === 503);
      const sick = await health(server.port);
      expect(sick.body.status).toBe('unavailable');
      expect(sick.body.state).toMatch(/^(failing|reconnecting)$/);
      expect(String(sick.body.reason)).toMatch(/Redis|batch failed/);
      await waitUntil('a failed batch to be counted', async () => (sample(await scrape(server.port), 'pg_redis_mirror_errors_total', 'stage="batch"') ?? 0) >= 1);
      const text = await scrape(server.port);
      expect(sample(text, 'pg_redis_mirror_reconnects_total', 'server="redis"')).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'pg_redis_mirror_journal_backlog_keys')).toBe(1);

      await redisServer.start();
      await settle(scratch, config, 60_000);
      await waitUntil('healthz to recover', async () => (await health(server.port)).status === 200, 30_000);
      const redis = await connectRedis(redisServer.url);
      try {
        expect(await redis.hgetall(`${scratch.prefix}public.m_fail:1`)).toEqual({ id: '1', v: 'a' });
      } finally {
        redis.disconnect();
      }
    } finally {
      await Promise.all(daemons.splice(0).map((d) => d.stop()));
      await redisServer.stop();
    }
  });
});

describe('listen --metrics-port, and logs (CLI)', () => {
  const env = (): Record<string, string> => ({ DATABASE_URL: scratch.databaseUrl, REDIS_URL: scratch.redisUrl });
  const schema = 'mirror_metrics_cli';
  const base = (): string[] => ['--prefix', scratch.prefix, '--schema', schema];

  beforeAll(async () => {
    await scratch.pool.query(`CREATE TABLE m_cli (id int PRIMARY KEY, v text)`);
    await install(scratch.config(['public.m_cli'], { schema }), scratch.pool);
  });

  function listen(globalArgs: string[], listenArgs: string[] = []): RunningCli {
    const child = spawnCli([...base(), ...globalArgs, 'listen', ...listenArgs], { env: env() });
    children.push(child);
    return child;
  }

  async function sigterm(child: RunningCli): Promise<Awaited<RunningCli['exited']>> {
    child.child.kill('SIGTERM');
    return child.exited;
  }

  it('serves /healthz and /metrics while listening, logs JSON off a terminal, and closes the port on SIGTERM', async () => {
    const child = spawnCli([...base(), 'listen', '--metrics-port', '0', '--metrics-host', '127.0.0.1'], { env: env() });
    children.push(child);
    let port = 0;
    await waitUntil('the metrics port in the log', () => {
      const line = child.stderr.split('\n').find((l) => l.includes('serving /metrics'));
      if (line !== undefined) port = (JSON.parse(line) as { port: number }).port;
      return port > 0;
    });
    await waitUntil('healthz 200', async () => (await health(port)).status === 200);
    await scratch.pool.query(`INSERT INTO m_cli SELECT g, 'v' FROM generate_series(1, 3) g`);
    await waitUntil('3 changes counted', async () => sample(await scrape(port), 'pg_redis_mirror_changes_applied_total', 'table="public.m_cli"') === 3);
    const result = await sigterm(child);
    expect(result.code, result.stderr).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    const lines = result.stderr.trim().split('\n');
    for (const line of lines) {
      const entry = JSON.parse(line) as { level: number; msg: string; name: string; time: number };
      expect(entry.name).toBe('pg-redis-mirror');
      expect(entry.level).toBeGreaterThanOrEqual(30);
    }
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(expect.arrayContaining(['serving /metrics and /healthz', 'stopped']));
  });

  it('refuses a metrics port that is in use in one line, before starting anything', async () => {
    const blocker = createServer();
    blocker.listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await runCli([...base(), 'listen', '--metrics-port', String(port), '--metrics-host', '127.0.0.1'], { env: env() });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toBe(`pg-redis-mirror: metrics port 127.0.0.1:${port} is already in use; choose another with --metrics-port (or "metricsPort" in the config)\n`);
      const bad = await runCli([...base(), 'listen', '--metrics-port', 'http'], { env: env() });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/--metrics-port.*must be a port number/);
    } finally {
      blocker.close();
    }
  });

  it('honours --log-level: debug shows batches, warn shows nothing on a quiet run', async () => {
    const debug = listen(['--log-level', 'debug']);
    await waitUntil('listening', () => debug.stderr.includes('listening'));
    await scratch.pool.query(`INSERT INTO m_cli VALUES (100, 'debug')`);
    await waitUntil('a debug line', () => debug.stderr.split('\n').some((l) => l.startsWith('{') && (JSON.parse(l) as { level: number }).level === 20));
    expect((await sigterm(debug)).code).toBe(0);

    const port = await freePort();
    const quiet = listen(['--log-level', 'warn'], ['--metrics-port', String(port)]);
    await waitUntil('healthz 200', async () => (await health(port).catch(() => ({ status: 0 }))).status === 200);
    await scratch.pool.query(`INSERT INTO m_cli VALUES (101, 'quiet')`);
    await settle(scratch, scratch.config([], { schema }));
    const result = await sigterm(quiet);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
  });

  it('prints readable, not JSON, log lines on a terminal', async () => {
    // script(1) gives the child a pseudo-terminal, as an operator's shell would.
    const code = `import('./dist/log.js').then(({ createLogger }) => { const l = createLogger({ level: 'info' }); l.info({ table: 'public.t' }, 'hello operator'); l.debug('hidden'); })`;
    const { stdout } = await promisify(execFile)('script', ['-qec', `${process.execPath} -e ${JSON.stringify(code)}`, '/dev/null'], { cwd: new URL('..', `file://${BIN}`).pathname });
    const text = stdout.replace(/\x1b\[[0-9;]*m/g, '');
    expect(text).toMatch(/INFO.*hello operator/);
    expect(text).toContain('table: "public.t"');
    expect(text).not.toContain('hidden');
    expect(text).not.toMatch(/^\{/m);
  });
});
