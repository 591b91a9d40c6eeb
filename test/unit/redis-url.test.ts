import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { describeRedisUrl, parseRedisUrl } from '../../src/redis/connect.js';
import { slotOf, slotTag, SLOT_COUNT } from '../../src/redis/cluster.js';
import { slotStateKey } from '../../src/redis/state.js';

describe('Redis Cluster URLs', () => {
  it('splits seed nodes, keeping credentials and parameters for each', () => {
    const { cluster, seeds } = parseRedisUrl('rediss+cluster://app:p%40ss@h1:7000,h2:7001?tls_verify=ca');
    expect(cluster).toBe(true);
    expect(seeds.map((u) => [u.protocol, u.hostname, u.port, u.username, u.password, u.searchParams.get('tls_verify')])).toEqual([
      ['rediss:', 'h1', '7000', 'app', 'p%40ss', 'ca'],
      ['rediss:', 'h2', '7001', 'app', 'p%40ss', 'ca'],
    ]);
    expect(describeRedisUrl('redis+cluster://:secret@h1:7000,h2')).toBe('h1:7000,h2:6379');
    expect(parseRedisUrl('redis://h:1/2')).toMatchObject({ cluster: false });
  });

  it('refuses what a cluster cannot do, in one line', () => {
    expect(() => parseRedisUrl('redis+cluster://h1:7000/3')).toThrow(/only database 0; remove \/3/);
    expect(() => parseRedisUrl('redis+cluster://h1:7000,,h2')).toThrow(/not a valid cluster URL/);
    expect(() => parseRedisUrl('http://h1')).toThrow(/must start with redis:\/\/, rediss:\/\/, redis\+cluster:\/\/ or rediss\+cluster:\/\//);
  });

  it('cluster: true in the config file makes the URL a cluster URL', () => {
    expect(resolveConfig({ cluster: true, redisUrl: 'redis://h1:7000,h2:7001' }, {}, {}).redisUrl).toBe('redis+cluster://h1:7000,h2:7001');
    expect(resolveConfig({ cluster: true }, { redisUrl: 'rediss://h:1' }, {}).redisUrl).toBe('rediss+cluster://h:1');
    expect(resolveConfig({}, { redisUrl: 'redis://h:1' }, {}).redisUrl).toBe('redis://h:1');
  });

  it('has a fence key in every hash slot', () => {
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      expect(slotTag(slot).length).toBeLessThanOrEqual(4);
      if (slotOf(slotStateKey('install-id', slot)) !== slot) throw new Error(`fence key of slot ${slot} is in another slot`);
    }
  });
});
