import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { createRedisClient, isRedisCluster, parseRedisUrl, redactRedisUrl, redisUrlIssue, scanKeys, withRedisCredentials } from './redis-connection.js';

describe('parseRedisUrl', () => {
  it('reads a single node with credentials, database and TLS', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380/2')).toEqual({ topology: 'standalone', tls: false, nodes: [{ host: '127.0.0.1', port: 6380 }], db: 2 });
    expect(parseRedisUrl('rediss://alice:p%40ss@redis.example:6390')).toEqual({
      topology: 'standalone',
      tls: true,
      nodes: [{ host: 'redis.example', port: 6390 }],
      username: 'alice',
      password: 'p@ss',
    });
    expect(parseRedisUrl('redis://:secret@localhost')).toMatchObject({ password: 'secret', nodes: [{ host: 'localhost', port: 6379 }] });
    expect(parseRedisUrl('redis://[::1]:7000')).toMatchObject({ nodes: [{ host: '::1', port: 7000 }] });
  });

  it('reads a Cluster seed list', () => {
    expect(parseRedisUrl('redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,redis-2')).toEqual({
      topology: 'cluster',
      tls: false,
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: 'redis-2', port: 6379 },
      ],
      password: 'pw',
    });
    expect(parseRedisUrl('rediss+cluster://h:1/')).toMatchObject({ topology: 'cluster', tls: true });
  });

  it('reads sentinels, the master name, the database and sentinel credentials', () => {
    expect(parseRedisUrl('redis+sentinel://u:pw@s1:26380,s2/mymaster/3?sentinelPassword=sp%26x&sentinelUsername=su')).toEqual({
      topology: 'sentinel',
      tls: false,
      nodes: [
        { host: 's1', port: 26380 },
        { host: 's2', port: 26379 },
      ],
      masterName: 'mymaster',
      db: 3,
      username: 'u',
      password: 'pw',
      sentinelUsername: 'su',
      sentinelPassword: 'sp&x',
    });
  });

  it.each([
    ['http://127.0.0.1:6379', /unknown scheme "http:"/],
    ['127.0.0.1:6379', /not a Redis URL/],
    ['redis://a:1,b:2', /names one node; use redis\+cluster:\/\/ or redis\+sentinel:\/\//],
    ['redis://127.0.0.1:99999', /port 99999 .* out of range/],
    ['redis://127.0.0.1:6379/x', /database "x" is not a number/],
    ['redis+cluster://a:1,,b:2', /no host/],
    ['redis+cluster://a:1/2', /database 0 only/],
    ['redis+sentinel://s1:26379', /names the master after the hosts/],
    ['redis+sentinel://s1:26379/m?tls=1', /unknown query parameter "tls"; only sentinelUsername and sentinelPassword/],
    ['redis+cluster://a b:1', /"a b:1" is not host:port/],
  ])('refuses %s with a reason', (url, reason) => {
    expect(redisUrlIssue(url)).toMatch(reason);
    expect(() => parseRedisUrl(url)).toThrow(/invalid Redis URL: url: /);
  });

  it('never repeats a password in its errors, and redacts it for logs', () => {
    expect(redisUrlIssue('redis://:hunter2@a:1,b:2')).not.toContain('hunter2');
    expect(redisUrlIssue('redis://:hunter2@host:6379/zz')).not.toContain('hunter2');
    expect(redactRedisUrl('redis://bob:hunter2@host:6379/0')).toBe('redis://bob:***@host:6379/0');
    expect(redactRedisUrl('redis+sentinel://:hunter2@s1,s2/m?sentinelPassword=topsecret')).toBe('redis+sentinel://:***@s1,s2/m?sentinelPassword=***');
    expect(redactRedisUrl('redis://host:6379')).toBe('redis://host:6379');
  });
});

describe('withRedisCredentials', () => {
  it('replaces the credentials of every form and keeps the rest', () => {
    expect(withRedisCredentials('redis://:old@h:6379/2', 'tandem-run-a', 'p/w@')).toBe('redis://tandem-run-a:p%2Fw%40@h:6379/2');
    expect(withRedisCredentials('redis+cluster://a:7000,b:7001', 'u', 'p')).toBe('redis+cluster://u:p@a:7000,b:7001');
    const url = withRedisCredentials('redis+sentinel://x:y@s1,s2/m/1?sentinelPassword=sp', 'u', 'p');
    expect(url).toBe('redis+sentinel://u:p@s1,s2/m/1?sentinelPassword=sp');
    expect(parseRedisUrl(url)).toMatchObject({ username: 'u', password: 'p', sentinelPassword: 'sp', masterName: 'm', db: 1 });
    expect(() => withRedisCredentials('http://h', 'u', 'p')).toThrow(/unknown scheme/);
  });
});

describe('createRedisClient', () => {
  let server: RedisServerHandle;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('makes the client the URL form asks for, carrying credentials and options', () => {
    const cluster = createRedisClient('rediss+cluster://:pw@127.0.0.1:7000,127.0.0.1:7001', { lazyConnect: true, maxRetriesPerRequest: null });
    expect(cluster).toBeInstanceOf(Cluster);
    expect(isRedisCluster(cluster)).toBe(true);
    const clusterOptions = (cluster as Cluster).options;
    expect(clusterOptions.redisOptions).toMatchObject({ password: 'pw', tls: {}, maxRetriesPerRequest: null });
    cluster.disconnect();

    const sentinel = createRedisClient('redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/1?sentinelPassword=sp', { lazyConnect: true });
    expect(sentinel).toBeInstanceOf(Redis);
    expect((sentinel as Redis).options).toMatchObject({
      sentinels: [
        { host: '127.0.0.1', port: 26379 },
        { host: '127.0.0.1', port: 26380 },
      ],
      name: 'mymaster',
      db: 1,
      password: 'pw',
      sentinelPassword: 'sp',
      failoverDetector: true,
      maxRetriesPerRequest: 20,
    });
    sentinel.disconnect();
    expect(() => createRedisClient('redis+sentinel://127.0.0.1:26379')).toThrow(/names the master after the hosts/);
  });

  it('connects to one node and scans its keys', async () => {
    const client = createRedisClient(`${server.url}/3`, { lazyConnect: true });
    expect(isRedisCluster(client)).toBe(false);
    await client.connect();
    try {
      await client.mset('t:{a}:1', '1', 't:{a}:2', '2', 't:{b}:1', '3');
      const seen: string[] = [];
      for await (const batch of scanKeys(client, 't:{a}:*', 1)) seen.push(...batch);
      expect(seen.sort()).toEqual(['t:{a}:1', 't:{a}:2']);
      // Database 3, not 0.
      const db0 = new Redis(server.url);
      expect(await db0.exists('t:{a}:1')).toBe(0);
      db0.disconnect();
    } finally {
      client.disconnect();
    }
  });
});
