import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { GeneratorRegistry } from './generator-registry.js';
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

function newRegistry(): { registry: GeneratorRegistry; runId: string } {
  const runId = `g-${randomUUID().slice(0, 8)}`;
  return { registry: new GeneratorRegistry(client, runId), runId };
}

describe('GeneratorRegistry.update', () => {
  it('stores each record exactly as a lone update would, and answers each caller', async () => {
    const { registry } = newRegistry();
    for (let i = 0; i < 50; i++) await registry.register(`gen-${i}`, `http://10.0.0.${i}:8000/`, 1);
    await registry.update('gen-3', { state: 'unhealthy', reason: 'missed a deadline', updatedAtMs: 2 });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => registry.update(`gen-${i}`, { state: 'syncing', updatedAtMs: 3 })),
    );
    expect(results[3]).toEqual({ id: 'gen-3', url: 'http://10.0.0.3:8000', state: 'syncing', policyVersion: -1, updatedAtMs: 3 });
    const list = await registry.list();
    expect(list).toHaveLength(50);
    expect(list.every((g) => g.state === 'syncing' && g.updatedAtMs === 3 && g.reason === undefined)).toBe(true);
    expect(results.map((r) => r?.id)).toEqual(Array.from({ length: 50 }, (_, i) => `gen-${i}`));
  });

  it('applies several updates of one generator in one batch in order, and skips removed ones', async () => {
    const { registry } = newRegistry();
    await registry.register('a', 'http://a:1', 1);
    const [first, second, gone] = await Promise.all([
      registry.update('a', { state: 'unhealthy', reason: 'r', updatedAtMs: 2 }),
      registry.update('a', { policyVersion: 7 }),
      registry.update('missing', { state: 'ready' }),
    ]);
    expect(first).toMatchObject({ state: 'unhealthy', reason: 'r', policyVersion: -1 });
    expect(second).toMatchObject({ state: 'unhealthy', reason: 'r', policyVersion: 7 });
    expect(gone).toBeUndefined();
    expect(await registry.get('a')).toEqual(second);
    expect(await registry.get('missing')).toBeUndefined();
  });

  it('publishes one wake-up per batch', async () => {
    const { registry, runId } = newRegistry();
    for (let i = 0; i < 10; i++) await registry.register(`gen-${i}`, 'http://x:1', 1);
    const sub = client.duplicate();
    const messages: string[] = [];
    await sub.subscribe(runKeys(runId).events);
    sub.on('message', (_channel, m: string) => messages.push(m));
    await Promise.all(Array.from({ length: 10 }, (_, i) => registry.update(`gen-${i}`, { state: 'ready', policyVersion: 1 })));
    await client.ping();
    await new Promise((r) => setTimeout(r, 50));
    sub.disconnect();
    expect(messages).toEqual(['generators']);
  });

  it('lists generators sorted as localeCompare sorts their ids', async () => {
    const { registry } = newRegistry();
    const ids = ['b', 'A', 'a', 'gen-10', 'gen-2', 'Z_1', 'z.1'];
    for (const id of ids) await registry.register(id, 'http://x:1', 1);
    expect((await registry.list()).map((g) => g.id)).toEqual([...ids].sort((x, y) => x.localeCompare(y)));
  });
});
