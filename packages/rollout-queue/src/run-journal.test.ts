import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { RunJournal } from './run-journal.js';
import { runKeys } from './keys.js';

let redis: RedisServerHandle;
let client: Redis;
beforeAll(async () => {
  redis = await startRedisServer();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

describe('RunJournal', () => {
  it('keeps entries oldest first, returns the newest `limit`, and trims beyond its cap', async () => {
    let now = 1_000;
    const journal = new RunJournal(client, { keyPrefix: 'tj', clock: { now: () => now, sleep: async () => undefined }, maxEntries: 5 });
    const runId = `j-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 8; i++) {
      now += 1;
      await journal.record(runId, i % 2 ? 'Warning' : 'Normal', `Reason${i}`, `message ${i}`);
    }
    expect((await journal.list(runId, 50)).map((e) => e.reason)).toEqual(['Reason3', 'Reason4', 'Reason5', 'Reason6', 'Reason7']);
    expect(await journal.list(runId, 2)).toEqual([
      { atMs: 1_007, type: 'Normal', reason: 'Reason6', message: 'message 6' },
      { atMs: 1_008, type: 'Warning', reason: 'Reason7', message: 'message 7' },
    ]);
    expect(await client.llen(runKeys(runId, 'tj').journal)).toBe(5);
    // Another run's journal is separate.
    expect(await journal.list(`${runId}-other`)).toEqual([]);
  });

  it('lives in the run\'s cluster slot, truncates long messages and skips malformed entries', async () => {
    const journal = new RunJournal(client, { keyPrefix: 'tj' });
    const runId = `j-${randomUUID().slice(0, 8)}`;
    const keys = runKeys(runId, 'tj');
    // Redis Cluster hashes only the first {...} of a key: the run's id.
    const hashTag = (key: string): string | undefined => /\{([^}]+)\}/.exec(key)?.[1];
    expect(hashTag(keys.journal)).toBe(runId);
    expect(hashTag(keys.meta)).toBe(runId);
    await journal.record(runId, 'Warning', 'Long', 'x'.repeat(5000));
    await client.rpush(keys.journal, 'not json', JSON.stringify({ atMs: 'soon', type: 'Normal', reason: 'R', message: 'm' }));
    await journal.record(runId, 'Normal', 'After', 'ok');
    const entries = await journal.list(runId);
    expect(entries.map((e) => e.reason)).toEqual(['Long', 'After']);
    expect(entries[0]?.message).toHaveLength(1024);
    expect(entries[0]?.message.endsWith('…')).toBe(true);
  });

  it('never fails its caller: a refused write is logged and dropped', async () => {
    const broken = new Redis(redis.url, { lazyConnect: true, enableOfflineQueue: false });
    const warnings: unknown[] = [];
    const log = { warn: (o: unknown) => warnings.push(o) } as unknown as Logger;
    const journal = new RunJournal(broken, { keyPrefix: 'tj', log });
    await expect(journal.record('r1', 'Normal', 'X', 'y')).resolves.toBeUndefined();
    expect(warnings).toHaveLength(1);
    broken.disconnect();
  });
});
