import { describe, expect, it } from 'vitest';
import { unsupportedPostgres } from '../../src/db/server-version.js';
import { redisVersionOf, unsupportedRedis } from '../../src/redis/version.js';

describe('server versions', () => {
  it('refuses PostgreSQL before 14 in one line that names the server and the fix', () => {
    expect(unsupportedPostgres(130014, '13.14 (Debian 13.14-1)', 'db:5432/shop')).toBe(
      'PostgreSQL 13.14 (Debian 13.14-1) at db:5432/shop is too old: pg-redis-mirror needs PostgreSQL 14 or later (it installs its triggers with CREATE OR REPLACE TRIGGER); upgrade the server',
    );
    expect(unsupportedPostgres(90624, '9.6.24', 'db:5432/shop')).toMatch(/^PostgreSQL 9\.6\.24 at db:5432\/shop is too old/);
    for (const num of [140000, 140011, 150019, 170002, 180000]) expect(unsupportedPostgres(num, String(num), 'db')).toBeUndefined();
  });

  it('refuses Redis before 5.0, reading the version from INFO server', () => {
    const info = (version: string) => `# Server\r\nredis_version:${version}\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n`;
    expect(redisVersionOf(info('7.0.15'))).toEqual({ text: '7.0.15', major: 7, minor: 0 });
    expect(unsupportedRedis(info('4.0.14'), 'cache:6379')).toBe('Redis 4.0.14 at cache:6379 is too old: pg-redis-mirror needs Redis 5.0 or later; upgrade the server');
    expect(unsupportedRedis(info('3.2.12'), 'cache:6379')).toMatch(/^Redis 3\.2\.12 at cache:6379 is too old/);
    for (const version of ['5.0.0', '5.0.14', '6.2.14', '7.0.15', '7.2.4', '10.1.0']) expect(unsupportedRedis(info(version), 'cache:6379')).toBeUndefined();
    // Valkey reports a redis_version for compatibility; without one (INFO refused) nothing is refused.
    expect(unsupportedRedis('# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n', 'cache:6379')).toBeUndefined();
    expect(unsupportedRedis('', 'cache:6379')).toBeUndefined();
  });
});
