import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('TANDEM_REDIS_URL', () => {
  it.each(['redis://127.0.0.1:6379/1', 'rediss://:pw@redis:6380', 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000', 'redis+sentinel://s1:26379,s2:26379/tandem'])('accepts %s', (url) => {
    expect(loadConfig({ TANDEM_REDIS_URL: url }).redisUrl).toBe(url);
  });

  it('refuses a bad URL naming the variable and the reason, without the password', () => {
    expect(() => loadConfig({ TANDEM_REDIS_URL: 'redis://:hunter2@a:1,b:2' })).toThrow(/TANDEM_REDIS_URL: a redis:\/\/ URL names one node; use redis\+cluster:\/\//);
    expect(() => loadConfig({ TANDEM_REDIS_URL: 'redis://:hunter2@a:1,b:2' })).not.toThrow(/hunter2/);
    expect(() => loadConfig({ TANDEM_REDIS_URL: 'redis+sentinel://s1:26379' })).toThrow(/TANDEM_REDIS_URL: a Sentinel URL names the master/);
    expect(() => loadConfig({ TANDEM_REDIS_URL: 'http://x' })).toThrow(/TANDEM_REDIS_URL: unknown scheme "http:"/);
  });

  it('checks the rollout workers’ URL of the kubernetes runtime the same way', () => {
    const env = { TANDEM_RUNTIME: 'kubernetes', TANDEM_NAMESPACE: 'tandem', TANDEM_REDIS_URL: 'redis+cluster://a:7000,b:7000' };
    expect(() => loadConfig({ ...env, TANDEM_WORKER_REDIS_URL: 'redis+cluster://a:7000/5' })).toThrow(/TANDEM_WORKER_REDIS_URL: a Redis Cluster has database 0 only/);
  });
});
