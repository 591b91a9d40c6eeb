import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeKeys } from '../src/redis/replace.js';
import { createScratch, type Scratch } from './helpers/scratch.js';

// writeKeys overwrites hashes in place and falls back to DEL+HSET only when needed: each way a
// key can hold something other than exactly the new row must still end as exactly the new row.
describe('writeKeys (atomic replace of one key per row)', () => {
  let scratch: Scratch;
  beforeAll(async () => {
    scratch = await createScratch('replace');
  });
  afterAll(async () => {
    await scratch.cleanup();
  });

  it('leaves exactly the new fields, whatever the key held before', async () => {
    const { redis, prefix } = scratch;
    const k = (name: string): string => `${prefix}${name}`;
    await redis.hset(k('same'), 'a', '1', 'b', '2');
    await redis.hset(k('fewer'), 'a', '1', 'b', '2', 'gone', 'x');
    await redis.hset(k('renamed'), 'old', '1', 'b', '2');
    await redis.set(k('string'), 'was json');
    await redis.hset(k('to-json'), 'a', '1');
    await redis.hset(k('to-empty'), 'a', '1');
    await redis.hset(k('deleted'), 'a', '1');
    await writeKeys(redis, [
      { key: k('same'), hash: ['a', '10', 'b', '20'] },
      { key: k('fewer'), hash: ['a', '10', 'b', '20'] },
      { key: k('renamed'), hash: ['new', '1', 'b', '2'] },
      { key: k('string'), hash: ['a', '1'] },
      { key: k('to-json'), json: '{"a":1}' },
      { key: k('to-empty'), hash: [] },
      { key: k('deleted'), delete: true },
      { key: k('fresh'), hash: ['a', ''] },
    ]);
    expect(await redis.hgetall(k('same'))).toEqual({ a: '10', b: '20' });
    expect(await redis.hgetall(k('fewer'))).toEqual({ a: '10', b: '20' });
    expect(await redis.hgetall(k('renamed'))).toEqual({ new: '1', b: '2' });
    expect(await redis.hgetall(k('string'))).toEqual({ a: '1' });
    expect(await redis.get(k('to-json'))).toBe('{"a":1}');
    expect(await redis.exists(k('to-empty'), k('deleted'))).toBe(0);
    expect(await redis.hgetall(k('fresh'))).toEqual({ a: '' });
  });

  it('loads its script again when Redis has forgotten it (a restart empties the script cache)', async () => {
    const { redis, prefix } = scratch;
    await redis.script('FLUSH');
    const writes = Array.from({ length: 1200 }, (_, i) => ({ key: `${prefix}flushed:${i}`, hash: ['v', String(i)] }));
    await writeKeys(redis, writes);
    expect(await redis.hget(`${prefix}flushed:0`, 'v')).toBe('0');
    expect(await redis.hget(`${prefix}flushed:1199`, 'v')).toBe('1199');
  });
});
