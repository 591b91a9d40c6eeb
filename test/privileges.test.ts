import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config/load.js';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { createPool } from '../src/db/connect.js';
import { install } from '../src/install/install.js';
import { quoteIdent } from '../src/sql/quote.js';
import { connectRedis } from '../src/redis/connect.js';
import { isClean, verifyMirror } from '../src/verify/verify.js';
import { runCli, type RunResult } from './helpers/cli.js';
import { TestRedisServer } from './helpers/redis-server.js';
import { createScratch, expectMirrorClean, settle, startDaemon, type Scratch } from './helpers/scratch.js';

let scratch: Scratch;
let dir: string;
const roles: string[] = [];

beforeAll(async () => {
  scratch = await createScratch('privileges');
  dir = mkdtempSync(join(tmpdir(), 'prm-privileges-'));
});
afterAll(async () => {
  for (const role of roles) await scratch.pool.query(`DROP OWNED BY ${quoteIdent(role)}; DROP ROLE ${quoteIdent(role)}`).catch(() => undefined);
  await scratch.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const show = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

/** A fresh LOGIN role (not superuser, no privileges yet), with quotes and a space in its name. */
async function createRole(label: string): Promise<string> {
  const role = `prm ${label} "${scratch.database.slice(-8)}"`;
  await scratch.pool.query(`CREATE ROLE ${quoteIdent(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`);
  roles.push(role);
  return role;
}

function urlAs(databaseUrl: string, role: string): string {
  const url = new URL(databaseUrl);
  url.username = encodeURIComponent(role);
  return url.toString();
}

function writeConfig(config: Config, tables: unknown[]): string {
  const file = join(dir, `${config.schema}.json`);
  writeFileSync(file, JSON.stringify({ schema: config.schema, prefix: scratch.prefix, tables }));
  return file;
}

describe('least privilege', () => {
  it('the daemon runs a realistic workload as a role with only the grants `sql grants` prints', async () => {
    await scratch.pool.query(`
      CREATE SCHEMA "App Schema";
      CREATE TABLE "App Schema".items (id int PRIMARY KEY, name text, qty int);
      CREATE TABLE public.order_lines (order_id int, line int, sku text NOT NULL, price_secret numeric, PRIMARY KEY (order_id, line));
      CREATE TABLE public.notes (id int PRIMARY KEY, body text, internal text);
      INSERT INTO "App Schema".items SELECT g, 'item ' || g, g FROM generate_series(1, 100) g;`);
    const tables = [
      '"App Schema".items',
      { table: 'public.order_lines', exclude: ['price_secret'] },
      { table: 'public.notes', columns: ['body'] },
    ];
    const config = scratch.config(
      [{ table: '"App Schema".items' }, { table: 'public.order_lines', exclude: ['price_secret'] }, { table: 'public.notes', columns: ['body'] }],
      { schema: 'mirror_least' },
    );
    await install(config, scratch.pool);
    const role = await createRole('daemon');

    const grants = await runCli(['--config', writeConfig(config, tables), 'sql', 'grants', '--role', role], { env: { DATABASE_URL: scratch.databaseUrl } });
    expect(grants.code, show(grants)).toBe(0);
    expect(grants.stdout).toContain(`GRANT SELECT, DELETE ON "mirror_least".journal TO ${quoteIdent(role)};`);
    expect(grants.stdout).toContain(`GRANT SELECT ON "App Schema"."items" TO ${quoteIdent(role)};`);
    expect(grants.stdout).toContain(`GRANT SELECT ("order_id", "line", "sku") ON "public"."order_lines"`);
    expect(grants.stdout).toContain(`GRANT SELECT ("id", "body") ON "public"."notes"`);
    expect(grants.stdout).not.toMatch(/price_secret|internal/);
    await scratch.pool.query(grants.stdout);

    const roleUrl = urlAs(config.databaseUrl, role);
    const asRole = createPool(roleUrl, { max: 1 });
    let daemon: MirrorDaemon | undefined;
    try {
      await expect(asRole.query(`SELECT price_secret FROM public.order_lines`)).rejects.toThrow(/permission denied/);
      await expect(asRole.query(`INSERT INTO mirror_least.journal (rel) VALUES (1)`)).rejects.toThrow(/permission denied/);

      // The initial copy, then the daemon, both as the role.
      const env = { DATABASE_URL: roleUrl, REDIS_URL: scratch.redisUrl };
      const sync = await runCli(['--schema', config.schema, 'sync', '--quiet'], { env });
      expect(sync.code, show(sync)).toBe(0);
      daemon = await startDaemon({ ...config, databaseUrl: roleUrl }, { pollIntervalMs: 200 });

      const app = scratch.pool;
      await app.query(`INSERT INTO public.order_lines SELECT o, l, 'sku-' || o || '-' || l, o * l FROM generate_series(1, 30) o, generate_series(1, 5) l`);
      await app.query(`INSERT INTO public.notes SELECT g, 'body ' || g, 'internal ' || g FROM generate_series(1, 20) g`);
      await app.query(`UPDATE "App Schema".items SET qty = qty * 2 WHERE id % 3 = 0`);
      await app.query(`UPDATE public.order_lines SET sku = sku || '-x', price_secret = 0 WHERE line = 2`);
      await app.query(`UPDATE public.order_lines SET line = line + 10 WHERE order_id = 7`);
      await app.query(`DELETE FROM public.order_lines WHERE order_id > 25`);
      await app.query(`DELETE FROM "App Schema".items WHERE id > 90`);
      await app.query(`TRUNCATE public.notes`);
      await app.query(`INSERT INTO public.notes VALUES (1, 'after truncate', 'hidden')`);
      await settle(scratch, config);

      expect(await scratch.redis.hgetall(`${scratch.prefix}public.order_lines:3:2`)).toEqual({ order_id: '3', line: '2', sku: 'sku-3-2-x' });
      expect(await scratch.redis.exists(`${scratch.prefix}public.order_lines:7:1`)).toBe(0);
      expect(await scratch.redis.hgetall(`${scratch.prefix}public.order_lines:7:11`)).toEqual({ order_id: '7', line: '11', sku: 'sku-7-1' });
      expect(await scratch.redis.hgetall(`${scratch.prefix}public.notes:1`)).toEqual({ body: 'after truncate' });
      expect(await scratch.redis.exists(`${scratch.prefix}public.notes:2`)).toBe(0);
      const reports = await expectMirrorClean(scratch, config);
      expect(reports.map((r) => r.rows)).toEqual(expect.arrayContaining([90, 125, 1]));

      // verify and status work as the role too.
      const verify = await runCli(['--schema', config.schema, 'verify'], { env });
      expect(verify.code, show(verify)).toBe(0);
      const status = await runCli(['--schema', config.schema, 'status', '--no-keys'], { env });
      expect(status.code, show(status)).toBe(0);
    } finally {
      await daemon?.stop();
      await asRole.end();
    }
  });

  it('a missing grant is one line that names the privilege and points to the README', async () => {
    await scratch.pool.query(`CREATE TABLE public.ungranted (id int PRIMARY KEY, v text)`);
    const config = scratch.config(['public.ungranted'], { schema: 'mirror_ungranted' });
    await install(config, scratch.pool);
    const role = await createRole('bare');
    const r = await runCli(['--schema', config.schema, 'listen'], { env: { DATABASE_URL: urlAs(config.databaseUrl, role), REDIS_URL: scratch.redisUrl } });
    expect(r.code, show(r)).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines, show(r)).toHaveLength(1);
    expect(lines[0]).toMatch(/permission denied for schema mirror_ungranted; grant the privilege \(see the README's "Privileges"\)/);
  });

  it('install and uninstall need only CREATE on the database and ownership of the mirrored tables', async () => {
    const installer = await createRole('installer');
    await scratch.pool.query(`
      GRANT CREATE ON DATABASE ${quoteIdent(scratch.database)} TO ${quoteIdent(installer)};
      CREATE TABLE public.owned (id int PRIMARY KEY, v text);
      ALTER TABLE public.owned OWNER TO ${quoteIdent(installer)};`);
    const env = { DATABASE_URL: urlAs(scratch.databaseUrl, installer), REDIS_URL: scratch.redisUrl };
    const args = ['--schema', 'mirror_by_installer', '--prefix', scratch.prefix, '--table', 'public.owned'];
    const installed = await runCli([...args, 'install'], { env });
    expect(installed.code, show(installed)).toBe(0);
    expect(installed.stdout).toMatch(/created public\.owned/);
    // The application (here: the superuser) writes; the capture function runs as the installer.
    await scratch.pool.query(`INSERT INTO public.owned VALUES (1, 'one')`);
    const journal = await scratch.pool.query(`SELECT count(*)::int AS n FROM mirror_by_installer.journal`);
    expect(journal.rows[0].n).toBe('1');
    const uninstalled = await runCli([...args, 'uninstall'], { env });
    expect(uninstalled.code, show(uninstalled)).toBe(0);
    const left = await scratch.pool.query(`SELECT to_regnamespace('mirror_by_installer') AS s`);
    expect(left.rows[0].s).toBeNull();
  });

  it('connects as a Redis user that may not run INFO: the server version then goes unchecked', async () => {
    const server = await TestRedisServer.start(undefined, { users: [{ name: 'noinfo', password: 'acl-pass', rules: [`~${scratch.prefix}*`, '+@read', '+@write', '+@connection'] }] });
    try {
      const redis = await connectRedis(`redis://noinfo:acl-pass@127.0.0.1:${server.port}`);
      try {
        await expect(redis.info('server')).rejects.toThrow(/NOPERM/);
        expect(await redis.set(`${scratch.prefix}k`, 'v')).toBe('OK');
      } finally {
        redis.disconnect();
      }
    } finally {
      await server.stop();
    }
  });

  // Without @transaction (the README's user before the daemon wrote with MULTI), the daemon writes through scripts.
  it.each([
    { name: 'acl_items', transaction: true },
    { name: 'acl_old', transaction: false },
  ])('the Redis ACL user of the README (the prefix\'s keys, read, write, scripting, transaction, scan, info) is enough for the daemon, sync and verify (with @transaction: $transaction)', async ({ name, transaction }) => {
    await scratch.pool.query(`CREATE TABLE public.${name} (id int PRIMARY KEY, v text); INSERT INTO public.${name} SELECT g, 'v' || g FROM generate_series(1, 50) g`);
    const rules = [`~${scratch.prefix}*`, '~pg-redis-mirror:state:*', '+@read', '+@write', '+@scripting', ...(transaction ? ['+@transaction'] : []), '+@connection', '+scan', '+info'];
    const server = await TestRedisServer.start(undefined, { users: [{ name: 'mirror', password: 'acl-pass', rules }] });
    const redisUrl = `redis://mirror:acl-pass@127.0.0.1:${server.port}`;
    const config = scratch.config([`public.${name}`], { schema: `mirror_acl_${name}`, redisUrl });
    let daemon: MirrorDaemon | undefined;
    const redis = await connectRedis(redisUrl);
    try {
      await install(config, scratch.pool);
      await expect(redis.set('other:key', 'x')).rejects.toThrow(/NOPERM/);
      const sync = await runCli(['--schema', config.schema, '--prefix', scratch.prefix, 'sync', '--quiet'], { env: { DATABASE_URL: scratch.databaseUrl, REDIS_URL: redisUrl } });
      expect(sync.code, show(sync)).toBe(0);
      // Nothing the user did not ask for, such as ioredis warning that its ready check was refused.
      expect(sync.stderr).toBe('');
      daemon = await startDaemon(config, { pollIntervalMs: 200 });
      await scratch.pool.query(`UPDATE public.${name} SET v = 'changed' WHERE id < 10; DELETE FROM public.${name} WHERE id > 40`);
      await settle(scratch, config);
      expect(await redis.hget(`${scratch.prefix}public.${name}:3`, 'v')).toBe('changed');
      await scratch.pool.query(`TRUNCATE public.${name}; INSERT INTO public.${name} VALUES (1, 'again')`);
      await settle(scratch, config);
      expect(isClean(await verifyMirror(scratch.pool, redis, { schema: config.schema }))).toBe(true);
      // Which way the daemon wrote (sync writes neither EXEC nor scripts, verify has not repaired yet).
      const stats = String(await redis.info('commandstats'));
      expect([/cmdstat_exec:calls=[1-9]/.test(stats), /cmdstat_evalsha:calls=[1-9]/.test(stats)]).toEqual([transaction, !transaction]);
      const verify = await runCli(['--schema', config.schema, 'verify', '--repair'], { env: { DATABASE_URL: scratch.databaseUrl, REDIS_URL: redisUrl } });
      expect(verify.code, show(verify)).toBe(0);
    } finally {
      await daemon?.stop();
      redis.disconnect();
      await server.stop();
    }
  });
});
