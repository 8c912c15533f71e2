import { describe, expect, it } from 'vitest';
import { silentLogger, type Clock } from '@tandem/common';
import type { GeneratorRecord } from '@tandem/rollout-queue';
import { GeneratorPool } from './generator-pool.js';

function fakeClock(): Clock & { advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, sleep: async () => undefined, advance: (ms) => (t += ms) };
}

const gen = (id: string, state: GeneratorRecord['state'], policyVersion: number): GeneratorRecord => ({
  id,
  url: `http://${id}`,
  state,
  policyVersion,
  updatedAtMs: 0,
});

function makePool(records: GeneratorRecord[], options: { probe?: (url: string) => Promise<boolean>; clock?: Clock } = {}) {
  const clock = options.clock ?? fakeClock();
  return new GeneratorPool(
    {
      list: async () => records,
      nextChange: () => {
        let timer: NodeJS.Timeout | undefined;
        const promise = new Promise<void>((r) => (timer = setTimeout(r, 5)));
        return { promise, cancel: () => clearTimeout(timer) };
      },
    },
    { maxInFlightPerGenerator: 2, unhealthyAfterFailures: 2, probeAfterMs: 100, refreshMs: 1_000_000 },
    { clock, log: silentLogger(), probe: options.probe ?? (async () => true) },
  );
}

describe('generator pool', () => {
  it('picks the least-loaded generator that holds fresh-enough weights', async () => {
    const pool = makePool([gen('a', 'ready', 3), gen('b', 'ready', 3), gen('j', 'joining', -1), gen('old', 'ready', 1)]);
    await pool.refresh();
    const signal = new AbortController().signal;
    const first = await pool.acquire(4, 1, signal);
    const second = await pool.acquire(4, 1, signal);
    expect(new Set([first.id, second.id])).toEqual(new Set(['a', 'b']));
    // "old" holds version 1: a result for target 4 would be 3 steps old > k = 1.
    // "j" is joining: it serves only after its first sync.
    const third = await pool.acquire(4, 1, signal);
    expect(['a', 'b']).toContain(third.id);
    expect(pool.load().find((l) => l.id === 'old')?.inFlight).toBe(0);
    expect(pool.load().find((l) => l.id === 'j')?.inFlight).toBe(0);
  });

  it('waits for a permit when every generator is at its limit', async () => {
    const pool = makePool([gen('a', 'ready', 0)]);
    await pool.refresh();
    const signal = new AbortController().signal;
    const l1 = await pool.acquire(0, 0, signal);
    await pool.acquire(0, 0, signal);
    let got = false;
    const waiting = pool.acquire(0, 0, signal).then((l) => {
      got = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toBe(false);
    l1.release('ok');
    expect((await waiting).id).toBe('a');
  });

  it('benches a failing generator and brings it back after a health probe', async () => {
    const clock = fakeClock();
    let healthy = false;
    const probes: string[] = [];
    const pool = makePool([gen('a', 'ready', 0), gen('b', 'ready', 0)], {
      clock,
      probe: async (url) => {
        probes.push(url);
        return healthy;
      },
    });
    await pool.refresh();
    const signal = new AbortController().signal;
    for (let i = 0; i < 2; i++) {
      const l = await pool.acquire(0, 0, signal);
      if (l.id === 'a') l.release('generator_fault');
      else {
        l.release('ok');
        i--;
      }
    }
    expect(pool.load().find((l) => l.id === 'a')?.benched).toBe(true);
    for (let i = 0; i < 3; i++) {
      const l = await pool.acquire(0, 0, signal);
      expect(l.id).toBe('b');
      l.release('ok');
    }
    clock.advance(200);
    await pool.acquire(0, 0, signal).then((l) => l.release('ok')); // starts the probe
    await new Promise((r) => setTimeout(r, 5));
    expect(probes).toEqual(['http://a']);
    expect(pool.load().find((l) => l.id === 'a')?.benched).toBe(true);
    healthy = true;
    clock.advance(200);
    await pool.acquire(0, 0, signal).then((l) => l.release('ok'));
    await new Promise((r) => setTimeout(r, 5));
    expect(pool.load().find((l) => l.id === 'a')?.benched).toBe(false);
  });

  it('stops waiting when aborted', async () => {
    const pool = makePool([gen('a', 'joining', -1)]);
    await pool.refresh();
    const abort = new AbortController();
    const p = pool.acquire(0, 0, abort.signal);
    abort.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
  });
  it('does not miss a version change published while it reads the registry', async () => {
    // The registry is read, the generator is published at version 1 and the
    // change event fires, all before the caller would go to sleep: the event
    // must still wake it (no change waiter times out here: refreshMs is an hour).
    let version = -1;
    const listeners = new Set<() => void>();
    let reads = 0;
    const pool = new GeneratorPool(
      {
        list: async () => {
          const snapshot = [gen('a', 'ready', version)];
          if (++reads === 1) {
            version = 1;
            for (const l of [...listeners]) l();
          }
          return snapshot;
        },
        nextChange: () => {
          let fire: () => void = () => undefined;
          const promise = new Promise<void>((r) => {
            fire = r;
            listeners.add(r);
          });
          return { promise, cancel: () => listeners.delete(fire) };
        },
      },
      { maxInFlightPerGenerator: 1, unhealthyAfterFailures: 2, probeAfterMs: 100, refreshMs: 3_600_000 },
      { clock: { now: () => Date.now(), sleep: async () => undefined }, log: silentLogger(), probe: async () => true },
    );
    const lease = await pool.acquire(1, 0, new AbortController().signal);
    expect(lease).toMatchObject({ id: 'a', policyVersion: 1 });
    expect(reads).toBe(2);
  });
});
