import { describe, expect, it } from 'vitest';
import { escapeGlob, keyLayout, parseKeyTemplate } from '../../src/redis/keys.js';

const base = { prefix: 'pg:', schema: 'public', name: 'users' };

describe('key layout', () => {
  it('builds the default layout and escapes ":" and "\\" in values', () => {
    const layout = keyLayout({ ...base, keyColumns: ['a', 'b'] });
    expect(layout.build(['1', '2'])).toBe('pg:public.users:1:2');
    expect(layout.build(['x:y', 'z'])).not.toBe(layout.build(['x', 'y:z']));
    expect(layout.build(['x\\', ':y'])).not.toBe(layout.build(['x\\:', 'y']));
    expect(layout.pattern).toBe('pg:public.users:*');
  });

  it('escapes dots in schema and table names so two tables never share keys', () => {
    const a = keyLayout({ prefix: 'pg:', schema: 'a.b', name: 'c', keyColumns: ['id'] });
    const b = keyLayout({ prefix: 'pg:', schema: 'a', name: 'b.c', keyColumns: ['id'] });
    expect(a.build(['1'])).not.toBe(b.build(['1']));
  });

  it('parses its own keys back, and nothing else', () => {
    const layout = keyLayout({ ...base, keyColumns: ['a', 'b'] });
    for (const values of [['1', '2'], ['x:y', 'z\\'], ['', ':']]) expect(layout.parse(layout.build(values))).toEqual(values);
    expect(layout.parse('pg:public.users:1')).toBeNull();
    expect(layout.parse('pg:public.other:1:2')).toBeNull();
    const template = keyLayout({ ...base, keyColumns: ['id', 'region'], keyTemplate: 'user:{region}:{id}' });
    expect(template.build(['7', 'eu:west'])).toBe('pg:user:eu\\:west:7');
    expect(template.parse('pg:user:eu\\:west:7')).toEqual(['7', 'eu:west']);
    expect(template.pattern).toBe('pg:user:*:*');
  });

  it('escapes glob characters in SCAN patterns', () => {
    expect(escapeGlob('a*b?[c]\\')).toBe('a\\*b\\?\\[c\\]\\\\');
    expect(keyLayout({ prefix: 'p*:', schema: 's', name: 't[1]', keyColumns: ['id'] }).pattern).toBe('p\\*:s.t\\[1\\]:*');
  });

  it('rejects templates that could make two rows share a key', () => {
    expect(() => parseKeyTemplate('u:{id}', ['id', 'region'])).toThrow(/must contain every key column; add \{region\}/);
    expect(() => parseKeyTemplate('u:{nope}', ['id'])).toThrow(/\{nope\} is not a key column/);
    expect(() => parseKeyTemplate('u:{id}{region}', ['id', 'region'])).toThrow(/separate/);
    expect(() => parseKeyTemplate('u:{id}-{region}', ['id', 'region'])).toThrow(/separate/);
    expect(() => parseKeyTemplate('u:{id}:{id}', ['id'])).toThrow(/appears twice/);
    expect(parseKeyTemplate('{id}', ['id'])).toEqual([{ column: 0 }]);
  });
});
