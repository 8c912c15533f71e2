import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { RunRedisUsers } from './redis-run-users.js';

/** Per-run Redis users on a real redis-server: the URL they give, the default-user warning, the fallbacks. */

let redis: RedisServerHandle | undefined;
let client: Redis | undefined;
afterEach(async () => {
  client?.disconnect();
  await redis?.stop();
  redis = undefined;
  client = undefined;
});

function capture(): { log: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ name: 't', level: 'debug', destination: { write: (s: string) => void lines.push(s) } }), lines };
}

describe('RunRedisUsers', () => {
  it('warns once when Redis\'s default user needs no password (the users would not confine anything)', async () => {
    redis = await startRedisServer();
    client = new Redis(redis.url);
    const { log, lines } = capture();
    const users = new RunRedisUsers({ redis: client, redisUrl: redis.url, keyPrefix: 'tandem', mode: 'required', log });
    const url = await users.create('r1', 'pw-0123456789');
    expect(new URL(url)).toMatchObject({ username: 'tandem-run-r1', password: 'pw-0123456789' });
    await users.create('r2', 'pw-9876543210');
    expect(lines.filter((l) => l.includes('default user needs no password'))).toHaveLength(1);
    expect(lines.join('')).not.toContain('pw-0123456789');
  });

  it('does not warn when Redis requires a password, and keeps the URL\'s host, port and scheme', async () => {
    redis = await startRedisServer({ extraArgs: ['--requirepass', 'admin-secret-pw'] });
    const adminUrl = `redis://:admin-secret-pw@127.0.0.1:${redis.port}/0`;
    client = new Redis(adminUrl);
    const { log, lines } = capture();
    const users = new RunRedisUsers({ redis: client, redisUrl: adminUrl, keyPrefix: 'tandem', mode: 'required', log });
    const url = new URL(await users.create('r1', 'pw-0123456789'));
    expect([url.protocol, url.hostname, url.port, url.pathname, url.username]).toEqual(['redis:', '127.0.0.1', String(redis.port), '/0', 'tandem-run-r1']);
    expect(lines.some((l) => l.includes('default user needs no password'))).toBe(false);
    await users.delete('r1');
    expect((await client.call('ACL', 'USERS')) as string[]).not.toContain('tandem-run-r1');
  });

  it('falls back to the shared URL with a warning when Redis refuses ACL commands (auto), and fails the run when required', async () => {
    const refusing = { call: async (): Promise<unknown> => Promise.reject(new Error("ERR unknown command 'ACL'")) };
    const { log, lines } = capture();
    const auto = new RunRedisUsers({ redis: refusing, redisUrl: 'redis://shared:6379', keyPrefix: 'tandem', mode: 'auto', log });
    expect(await auto.create('r1', 'pw')).toBe('redis://shared:6379');
    expect(lines.some((l) => l.includes('Redis refuses ACL commands'))).toBe(true);
    const required = new RunRedisUsers({ redis: refusing, redisUrl: 'redis://shared:6379', keyPrefix: 'tandem', mode: 'required', log });
    await expect(required.create('r1', 'pw')).rejects.toThrow(/TANDEM_REDIS_RUN_USERS=required/);
    const off = new RunRedisUsers({ redis: refusing, redisUrl: 'redis://shared:6379', keyPrefix: 'tandem', mode: 'off', log });
    expect(await off.create('r1', 'pw')).toBe('redis://shared:6379');
  });
});
