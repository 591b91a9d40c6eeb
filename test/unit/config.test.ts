import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { formatTableName, parseTableName } from '../../src/config/table-name.js';

function dirWith(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'prm-config-'));
  writeFileSync(join(dir, name), text);
  return dir;
}

describe('table names', () => {
  it('parses plain, qualified and quoted names exactly as written', () => {
    expect(parseTableName('users')).toEqual({ schema: 'public', name: 'users' });
    expect(parseTableName('Sales.Orders')).toEqual({ schema: 'Sales', name: 'Orders' });
    expect(parseTableName('"my schema"."a.b ""q"""')).toEqual({ schema: 'my schema', name: 'a.b "q"' });
    expect(formatTableName({ schema: 'my.s', name: 'x"y' })).toBe('"my.s"."x""y"');
    for (const bad of ['a.b.c', '.x', 'a.', '"open']) expect(() => parseTableName(bad)).toThrow();
  });
});

describe('config files', () => {
  it('reads JSON and YAML, with flags and environment taking precedence', () => {
    const dir = dirWith('pg-redis-mirror.yaml', 'prefix: "app:"\ndatabaseUrl: postgres://file/db\ntables:\n  - public.users\n  - table: sales.orders\n    format: json\n');
    const config = loadConfig({ tables: ['public.extra'] }, { DATABASE_URL: 'postgres://env/db' }, dir);
    expect(config.databaseUrl).toBe('postgres://env/db');
    expect(config.prefix).toBe('app:');
    expect(config.tables.map(formatTableName)).toEqual(['public.users', 'sales.orders', 'public.extra']);
    expect(config.tables[1]).toMatchObject({ format: 'json', prefix: 'app:' });
    expect(loadConfig({ databaseUrl: 'postgres://flag/db' }, { DATABASE_URL: 'postgres://env/db' }, dir).databaseUrl).toBe('postgres://flag/db');
  });

  it.each([
    ['{ "tables": [', /is not valid JSON/],
    ['{ "tabels": [] }', /unknown field "tabels"/],
    ['{ "batchSize": "x" }', /batchSize: .*number/],
    ['{ "tables": [{ "table": "a", "format": "xml" }] }', /tables\[0\]\.format/],
    ['{ "tables": [{ "table": "a", "colums": ["x"] }] }', /tables\[0\]: unknown field "colums"/],
    ['{ "tables": [{ "table": "a", "columns": ["x"], "exclude": ["y"] }] }', /either "columns" or "exclude"/],
    ['{ "tables": ["a", "public.a"] }', /listed twice/],
  ])('names the problem in %s', (text, message) => {
    const dir = dirWith('pg-redis-mirror.json', text);
    expect(() => loadConfig({}, {}, dir)).toThrow(message);
  });

  it('says so when --config names a file that does not exist', () => {
    expect(() => loadConfig({ config: 'nope.json' }, {}, tmpdir())).toThrow(/config file nope.json does not exist/);
  });
});
