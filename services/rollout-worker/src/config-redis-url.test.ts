import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('TANDEM_REDIS_URL of a rollout worker', () => {
  it('accepts the Cluster and Sentinel forms unchanged', () => {
    for (const url of ['redis+cluster://127.0.0.1:7000,127.0.0.1:7001', 'rediss+sentinel://:pw@s1,s2/tandem/2']) {
      expect(loadConfig({ TANDEM_RUN_ID: 'r', TANDEM_REDIS_URL: url }).redisUrl).toBe(url);
    }
  });

  it('refuses a malformed one naming the variable', () => {
    expect(() => loadConfig({ TANDEM_RUN_ID: 'r', TANDEM_REDIS_URL: 'redis+cluster://' })).toThrow(/TANDEM_REDIS_URL: no host/);
  });
});
