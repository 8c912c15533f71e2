import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '@tandem/common';
import { parseRunSpec } from '@tandem/run-spec';
import { RunRecordStore } from '@tandem/rollout-queue';
import type { ControlPlane } from '../control-plane.js';
import { TINY_RUN_SPEC, startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';

/**
 * RunManager against real Redis and HTTP.
 *
 * An ended run's series stay on /metrics (its final figures) for
 * TANDEM_ENDED_RUN_METRICS_SECONDS, then go, and reading the old run later
 * does not bring them back: a long-lived control plane does not export
 * every run it ever had. Real Redis and HTTP; the clock runs ahead on demand.
 */

let cp: TestControlPlane;
let plane: ControlPlane;
let http: string;
let aheadMs = 0;
const clock: Clock = { now: () => Date.now() + aheadMs, sleep: systemClock.sleep };

beforeAll(async () => {
  cp = await startTestControlPlane({ TANDEM_ENDED_RUN_METRICS_SECONDS: '600' }, { clock });
  ({ plane, httpUrl: http } = cp);
});
afterAll(async () => {
  await cp?.stop();
});

async function seriesOf(run: string): Promise<string[]> {
  const text = await (await fetch(`${http}/metrics`)).text();
  return text.split('\n').filter((line) => !line.startsWith('#') && line.includes(`run="${run}"`));
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('metrics of ended runs', () => {
  it('are exported until the retention has passed, then removed for good', async () => {
    const spec = TINY_RUN_SPEC;
    const keep = { runId: 'still-open', spec };
    const ended = { runId: 'ends-early', spec };
    for (const body of [keep, ended]) {
      const res = await fetch(`${http}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(201);
    }
    expect((await fetch(`${http}/v1/runs/ends-early:cancel`, { method: 'POST', body: '{}' })).status).toBe(200);
    // Its final figures: the cancelled ledger is on /metrics once admission has ended.
    await until(async () => !plane.runs.isAdmitting('ends-early'), 'admission of the cancelled run to end');
    expect(await seriesOf('ends-early')).toContain('tandem_run_open{run="ends-early"} 0');
    expect((await seriesOf('ends-early')).some((l) => l.startsWith('tandem_groups_total{run="ends-early",outcome="cancelled"}'))).toBe(true);

    // Still there just before the retention ends.
    aheadMs = 599_000;
    expect((await seriesOf('ends-early')).length).toBeGreaterThan(0);
    // Past it: the next scrapes drop them (the removal runs beside the scrape that notices).
    aheadMs = 601_000;
    await until(async () => (await seriesOf('ends-early')).length === 0, 'the ended run’s series to go');
    expect((await seriesOf('still-open')).length).toBeGreaterThan(0);

    // Reading the old run answers as before, and exports nothing again.
    const got = await fetch(`${http}/v1/runs/ends-early`);
    expect(got.status).toBe(200);
    expect(((await got.json()) as { status: { phase: string } }).status.phase).toBe('Cancelled');
    expect(await seriesOf('ends-early')).toEqual([]);

    // A replica that stops running its runs (it lost leadership, or stops)
    // stops exporting them too, rather than freezing them beside the new leader's.
    await plane.runs.stop();
    expect(await seriesOf('still-open')).toEqual([]);
  });
});

describe('a run whose record was stored but whose queue was never created', () => {
  it('gets its queue when it is accepted again (a crash between the two writes)', async () => {
    const spec = parseRunSpec(TINY_RUN_SPEC);
    const now = new Date().toISOString();
    const records = new RunRecordStore(plane.store.redis, 'tandem');
    expect(await records.create({ id: 'half-made', namespace: 'default', spec, phase: 'Pending', message: '', createdAt: now, updatedAt: now, finishedAt: '' })).toBe(true);
    await expect(plane.store.forRun('half-made').snapshot()).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const { created } = await plane.runs.accept('half-made', spec);
    expect(created).toBe(false);
    const snap = await plane.store.forRun('half-made').snapshot();
    expect(snap).toMatchObject({ state: 'open', trainerStep: 0, settings: { batchGroups: 2, maxSteps: 3 } });
    // Admission runs on it.
    await until(async () => (await plane.store.forRun('half-made').snapshot()).inFlight > 0, 'a group admitted');
    await plane.runs.cancel('half-made', 'test over');
  });
});
