import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@tandem/common';
import { Informer } from './informer.js';
import { CONFIGMAP, type KubeObject } from './resources.js';
import { eventually, startKubeHarness, type KubeHarness } from './testing/kube-harness.js';

/**
 * The informer against the fake apiserver's faults: a resourceVersion too
 * old (410 Gone) relists, dropped watches resume from the last version,
 * 5xx back off on the injected clock (capped), and a stream that stalls
 * without closing is restarted by the watchdog.
 */

const NS = 'default';
let h: KubeHarness;
let informer: Informer<KubeObject>;
let seen: Array<[string, string]>;

function cm(name: string, value = '1'): KubeObject {
  return { metadata: { name, namespace: NS }, data: { value } };
}

beforeEach(async () => {
  h = await startKubeHarness({ historyLimit: 1000 });
  seen = [];
  informer = new Informer<KubeObject>({
    api: h.kube,
    type: CONFIGMAP,
    namespace: NS,
    clock: h.clock,
    log: silentLogger(),
    stallTimeoutMs: 10_000,
    watchdogIntervalMs: 1000,
    initialBackoffMs: 100,
    maxBackoffMs: 1600,
    onEvent: (type, o) => seen.push([type, `${o.metadata.name}=${(o.data as { value: string }).value}`]),
  });
});

afterEach(async () => {
  await informer?.stop();
  await h?.stop();
});

const cached = (name: string): string | undefined => (informer.get(NS, name)?.data as { value?: string } | undefined)?.value;

describe('informer', () => {
  it('lists, then follows the watch', async () => {
    await h.kube.create(CONFIGMAP, NS, cm('a'));
    informer.start();
    await informer.waitForSync();
    expect(cached('a')).toBe('1');
    await h.kube.create(CONFIGMAP, NS, cm('b'));
    await h.kube.mergePatch(CONFIGMAP, NS, 'a', { data: { value: '2' } });
    await h.kube.delete(CONFIGMAP, NS, 'b');
    await eventually(() => cached('a') === '2' && informer.get(NS, 'b') === undefined, { what: 'events applied' });
    expect(seen).toEqual([['ADDED', 'a=1'], ['ADDED', 'b=1'], ['MODIFIED', 'a=2'], ['DELETED', 'b=1']]);
  });

  it('resumes a dropped watch from its last resourceVersion without relisting', async () => {
    informer.start();
    await informer.waitForSync();
    await eventually(() => h.api.openWatches === 1, { what: 'watch open' });
    expect(h.api.dropWatches()).toBe(1);
    await h.kube.create(CONFIGMAP, NS, cm('while-down'));
    await eventually(() => cached('while-down') === '1', { what: 'event after reconnect', clock: h.clock, advanceMs: 100 });
    expect(informer.stats.lists).toBe(1);
    const resumed = h.api.requests.filter((r) => r.query.includes('watch=1')).at(-1);
    expect(resumed?.query).toMatch(/resourceVersion=\d+/);
    expect(resumed?.query).not.toMatch(/resourceVersion=0\b/);
  });

  it('relists when the resourceVersion is too old (410 Gone) and reports deletions it missed', async () => {
    await h.kube.create(CONFIGMAP, NS, cm('old'));
    informer.start();
    await informer.waitForSync();
    await eventually(() => h.api.openWatches === 1, { what: 'watch open' });
    // While the informer is disconnected, history is compacted past its version.
    h.api.failNext({ status: 503, count: 1, match: (r) => r.query.includes('watch=1') });
    h.api.dropWatches();
    await h.kube.delete(CONFIGMAP, NS, 'old');
    await h.kube.create(CONFIGMAP, NS, cm('new'));
    h.api.store.compact();
    await eventually(() => cached('new') === '1' && informer.get(NS, 'old') === undefined, { what: 'relisted', clock: h.clock, advanceMs: 200 });
    expect(informer.stats.relistsAfterGone).toBe(1);
    expect(informer.stats.lists).toBe(2);
    expect(seen).toEqual(expect.arrayContaining([['DELETED', 'old=1'], ['ADDED', 'new=1']]));
  });

  it('backs off on 5xx with capped exponential delays on the injected clock', async () => {
    h.api.failNext({ status: 500, count: 6, match: (r) => r.method === 'GET' && !r.query.includes('watch=1') });
    informer.start();
    // Without advancing the clock it stays in backoff: nothing sleeps for real.
    await eventually(() => informer.stats.errors === 1, { what: 'first failure' });
    await new Promise((r) => setTimeout(r, 50));
    expect(informer.stats.errors).toBe(1);
    expect(informer.hasSynced()).toBe(false);
    // 100, 200, 400, 800, 1600, 1600: the sixth failure waits the cap.
    for (const delay of [100, 200, 400, 800, 1600]) {
      const before = informer.stats.errors;
      await h.clock.advance(delay - 1, { stepMs: delay - 1 });
      await new Promise((r) => setTimeout(r, 20));
      expect(informer.stats.errors).toBe(before);
      await h.clock.advance(1, { stepMs: 1 });
      await eventually(() => informer.stats.errors === before + 1, { what: `failure after ${delay} ms` });
    }
    await h.clock.advance(1600, { stepMs: 1600 });
    await eventually(() => informer.hasSynced(), { what: 'synced after the faults' });
  });

  it('restarts a watch that stalls silently (no events, no bookmarks)', async () => {
    informer.start();
    await informer.waitForSync();
    await eventually(() => h.api.openWatches === 1, { what: 'watch open' });
    h.api.stallWatches();
    await h.kube.create(CONFIGMAP, NS, cm('during-stall'));
    await new Promise((r) => setTimeout(r, 50));
    expect(cached('during-stall')).toBeUndefined();
    await eventually(() => cached('during-stall') === '1', { what: 'recovered after the watchdog', clock: h.clock, advanceMs: 1000, timeoutMs: 10_000 });
    expect(informer.stats.stalls).toBe(1);
    expect(informer.stats.lists).toBe(1);
  });
});
