import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { renderStarterConfig, starterFormatFor, starterSummary, suggestedKey, type StarterTable } from '../../src/config/starter.js';
import { formatTableName } from '../../src/config/table-name.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function load(name: string, text: string): ReturnType<typeof loadConfig> {
  const dir = mkdtempSync(join(tmpdir(), 'prm-starter-'));
  dirs.push(dir);
  writeFileSync(join(dir, name), text);
  return loadConfig({ config: name }, {}, dir);
}

function table(schema: string, name: string, columns: string[], primaryKey: string[] | null, extra: Partial<StarterTable> = {}): StarterTable {
  return { schema, name, columns: columns.map((c) => ({ name: c, notNull: primaryKey?.includes(c) ?? false })), primaryKey, uniqueKeys: primaryKey === null ? [] : [primaryKey], ...extra };
}

const users = table('public', 'users', ['id', 'name', 'email'], ['id']);
const lines = table('sales', 'lines', ['order_id', 'line', 'Qty'], ['order_id', 'line']);
const events: StarterTable = {
  schema: 'public',
  name: 'events',
  columns: [{ name: 'maybe', notNull: false }, { name: 'uuid', notNull: true }, { name: 'tenant', notNull: true }, { name: 'payload', notNull: false }],
  primaryKey: null,
  uniqueKeys: [['maybe'], ['tenant', 'uuid'], ['uuid']],
};
const logs = table('public', 'logs', ['msg'], null);
/** Names a YAML file could choke on: line breaks, quotes, dots, comment and mapping markers, controls. */
const WEIRD = ['we"ird name.v1', 'line\nbreak', 'para\u2028sep', 'ctl\u0001\u007f\u0085', '# not a comment', 'key: value', ' lead', 'true', '123', 'tab\there', 'naïve 🐘', '-', "it's", '[x]'];

describe('starter config (YAML)', () => {
  it('lists tables with a primary key as entries, their key and columns as a comment, and loads back', () => {
    const starter = renderStarterConfig([users, lines, events, logs], { format: 'yaml', schema: 'redis_mirror', prefix: 'pg:', source: 'db:5432/shop' });
    const text = starter.text;
    expect(text).toMatch(/^# pg-redis-mirror config: a starter written by `pg-redis-mirror init` from db:5432\/shop\./);
    expect(text).toContain('DATABASE_URL');
    expect(text).toContain('REDIS_URL');
    expect(text).not.toMatch(/^(databaseUrl|redisUrl):/m);
    expect(text).toContain('  - table: public.users\n    # key: id; columns: id, name, email\n');
    expect(text).toContain('  - table: sales.lines\n    # key: order_id, line; columns: order_id, line, Qty\n');
    // No primary key: commented out, with the fix, and the qualifying unique index (NOT NULL, fewest columns) suggested.
    expect(text).toContain(
      '  # public.events has no primary key: add one, or set `key:` to columns that are unique and NOT NULL;\n' +
        '  # the unique index on (uuid) qualifies: uncomment this entry to use it.\n' +
        '  # - table: public.events\n' +
        '  #   key: [uuid]\n' +
        '  #   # no primary key; columns: maybe, uuid, tenant, payload\n',
    );
    expect(text).toContain('  # public.logs has no primary key: add one, or set `key:` to columns that are unique and NOT NULL;\n  # no unique index');
    expect(text).toContain('  # - table: public.logs\n');
    expect(parseYaml(text)).toEqual({ schema: 'redis_mirror', prefix: 'pg:', tables: [{ table: 'public.users' }, { table: 'sales.lines' }] });
    const config = load('mirror.yaml', text);
    expect(config.tables.map(formatTableName)).toEqual(['public.users', 'sales.lines']);
    expect(config.schema).toBe('redis_mirror');
    expect(config.prefix).toBe('pg:');
    expect(starter.listed).toEqual([users, lines]);
    expect(starter.withoutKey).toEqual([events, logs]);
    expect(starter.notes).toEqual([]);
    expect(starterSummary('pg-redis-mirror.yaml', starter, 'yaml')).toBe('wrote pg-redis-mirror.yaml: 4 tables, 2 without a primary key (commented out)');
  });

  it('uncommenting a suggested entry gives a valid table entry with its key', () => {
    const { text } = renderStarterConfig([users, events], { format: 'yaml', schema: 's', prefix: 'p:' });
    const uncommented = text.replace(/^ {2}# (- table: .*|  key: .*)$/gm, '  $1');
    const config = load('pg-redis-mirror.yaml', uncommented);
    expect(config.tables.map((t) => [formatTableName(t), t.key])).toEqual([
      ['public.users', undefined],
      ['public.events', ['uuid']],
    ]);
  });

  it('keeps odd names exact: every entry round-trips and no name can break out of a comment', () => {
    const tables: StarterTable[] = WEIRD.map((name, i) => ({
      schema: i % 2 === 0 ? 'public' : `s.${name}`,
      name,
      columns: [{ name, notNull: true }, { name: 'a, b; c', notNull: false }],
      primaryKey: i % 3 === 0 ? null : [name],
      uniqueKeys: [[name]],
    }));
    const { text } = renderStarterConfig(tables, { format: 'yaml', schema: 'tool "schema"\nx', prefix: 'p: #', source: 'h:1/d\nb' });
    const expected = tables.filter((t) => t.primaryKey !== null).map((t) => ({ schema: t.schema, name: t.name }));
    const config = load('pg-redis-mirror.yml', text);
    expect(config.tables.map((t) => ({ schema: t.schema, name: t.name }))).toEqual(expected);
    expect(config.schema).toBe('tool "schema"\nx');
    expect(config.prefix).toBe('p: #');
    // Every line is a comment, blank, or part of the data; commented-out entries stay comments.
    for (const line of text.split('\n')) {
      expect(line).toMatch(/^(#.*|| {2}#.*| {4}#.*|schema: .*|prefix: .*|tables:( \[\])?| {2}- table: .*)$/);
    }
    const uncommented = text.replace(/^ {2}# (- table: .*|  key: .*)$/gm, '  $1');
    const all = load('pg-redis-mirror.yml', uncommented);
    expect(all.tables.map((t) => ({ schema: t.schema, name: t.name }))).toEqual(tables.map((t) => ({ schema: t.schema, name: t.name })));
    expect(all.tables.filter((t) => t.key !== undefined).map((t) => t.key)).toEqual(tables.filter((t) => t.primaryKey === null).map((t) => [t.name]));
  });

  it('writes an empty list that still loads when no table has a primary key', () => {
    const starter = renderStarterConfig([logs], { format: 'yaml', schema: 'redis_mirror', prefix: 'pg:' });
    expect(starter.text).toMatch(/^tables: \[\]\n {2}# public\.logs has no primary key/m);
    expect(load('pg-redis-mirror.yaml', starter.text).tables).toEqual([]);
    expect(starterSummary('x.yaml', starter, 'yaml')).toBe('wrote x.yaml: 1 table, 1 without a primary key (commented out)');
  });
});

describe('starter config (JSON)', () => {
  it('lists only tables with a primary key and returns a note for each other one', () => {
    const starter = renderStarterConfig([users, events, logs, table('Odd "S"', 'a.b c', ['k'], ['k'])], { format: 'json', schema: 'redis_mirror', prefix: 'pg:' });
    expect(JSON.parse(starter.text)).toEqual({
      schema: 'redis_mirror',
      prefix: 'pg:',
      tables: [{ table: 'public.users' }, { table: '"Odd ""S"""."a.b c"' }],
    });
    expect(load('pg-redis-mirror.json', starter.text).tables.map((t) => [t.schema, t.name])).toEqual([
      ['public', 'users'],
      ['Odd "S"', 'a.b c'],
    ]);
    expect(starter.notes).toEqual([
      'note: public.events has no primary key and was left out; add a primary key, or list it as {"table":"public.events","key":["uuid"]} (a unique index on NOT NULL columns)',
      'note: public.logs has no primary key and was left out; add a primary key, or a unique index on NOT NULL columns and list it with "key"',
    ]);
    expect(starterSummary('out.json', starter, 'json')).toBe('wrote out.json: 4 tables, 2 without a primary key (left out)');
    expect(starterSummary('out.json', renderStarterConfig([users], { format: 'json', schema: 's', prefix: 'p' }), 'json')).toBe('wrote out.json: 1 table');
  });

  it('picks the format from the file name as loadConfig reads it', () => {
    expect(starterFormatFor('x/pg-redis-mirror.json')).toBe('json');
    expect(starterFormatFor('pg-redis-mirror.yml')).toBe('yaml');
    expect(starterFormatFor('config')).toBe('yaml');
  });
});

describe('suggested key', () => {
  it('is the smallest unique index whose columns are all NOT NULL, or none', () => {
    expect(suggestedKey(events)).toEqual(['uuid']);
    expect(suggestedKey(logs)).toBeNull();
    expect(suggestedKey({ ...events, uniqueKeys: [['maybe'], ['maybe', 'uuid']] })).toBeNull();
    expect(suggestedKey({ ...events, uniqueKeys: [['tenant', 'uuid']] })).toEqual(['tenant', 'uuid']);
  });
});
