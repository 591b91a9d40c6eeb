import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorDaemon } from '../src/daemon/daemon.js';
import { syncTables } from '../src/sync/sync.js';
import { createScratch, expectMirrorClean, installAndStart, settle, type Scratch } from './helpers/scratch.js';

// Redis gets UTF-8 whatever the database's own encoding: the daemon frames values by their
// UTF-8 byte length, which differs from their length in LATIN1.
describe('a database that is not UTF8', () => {
  let scratch: Scratch;
  let daemon: MirrorDaemon | undefined;
  beforeAll(async () => {
    scratch = await createScratch('latin1', { encoding: 'LATIN1' });
  });
  afterAll(async () => {
    await daemon?.stop();
    await scratch.cleanup();
  });

  it('mirrors non-ASCII text exactly', async () => {
    await scratch.pool.query(`CREATE TABLE words (id int PRIMARY KEY, word text, note varchar(20))`);
    const config = scratch.config(['public.words']);
    daemon = await installAndStart(scratch, config);
    await scratch.pool.query(`INSERT INTO words VALUES (1, 'café crème', 'Ünïcödé ÿ'), (2, 'plain', NULL)`);
    await settle(scratch, config);
    expect(await scratch.redis.hgetall(`${scratch.prefix}public.words:1`)).toEqual({ id: '1', word: 'café crème', note: 'Ünïcödé ÿ' });
    expect(await scratch.redis.hgetall(`${scratch.prefix}public.words:2`)).toEqual({ id: '2', word: 'plain' });
    await expectMirrorClean(scratch, config);

    // A copy frames rows the same way.
    await scratch.redis.del(`${scratch.prefix}public.words:1`);
    await syncTables(scratch.pool, scratch.redis, { schema: config.schema });
    expect(await scratch.redis.hgetall(`${scratch.prefix}public.words:1`)).toEqual({ id: '1', word: 'café crème', note: 'Ünïcödé ÿ' });
    await expectMirrorClean(scratch, config);
  });
});
