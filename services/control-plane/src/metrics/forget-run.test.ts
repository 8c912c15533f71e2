import { describe, expect, it } from 'vitest';
import type { QueueSnapshot } from '@tandem/rollout-queue';
import { ControlPlaneMetrics } from './control-plane-metrics.js';

function snapshot(step: number): QueueSnapshot {
  return {
    state: 'closed',
    policyVersion: step,
    trainerStep: step,
    queueDepth: 0,
    inFlight: 0,
    settings: { maxTrajectoryAgeSteps: 1, batchGroups: 2, capacityGroups: 4, maxSteps: step },
    ledger: { admitted: 8, trained: 8, droppedStale: 0, failed: 0, cancelled: 0, tokensWasted: 0, tokensTrained: 100 },
  } as unknown as QueueSnapshot;
}

/** Every series of every run-labelled metric, set for runs a and b the way the control plane sets them. */
function populated(): ControlPlaneMetrics {
  const m = new ControlPlaneMetrics({ defaultMetrics: false });
  for (const run of ['a', 'b']) {
    m.observeSnapshot(run, snapshot(4));
    m.observeGenerationStats(run, { tokens: '100', 'requests:ok': '3' });
    m.trajectoryAge.observe({ run }, 1);
    m.admissionWait.observe({ run }, 0.1);
    m.trainerWait.inc({ run }, 0.5);
    m.batchesServed.inc({ run, reserved: 'false' });
    m.weightSyncSeconds.observe({ run, phase: 'total' }, 0.2);
    m.weightSyncs.inc({ run, result: 'ok' });
    m.generatorPolicyVersion.set({ run, generator: 'g0' }, 4);
    m.generators.set({ run, state: 'ready' }, 1);
    m.generatorBusyRatio.set({ run, generator: 'g0' }, 0.5);
  }
  return m;
}

async function runsExported(m: ControlPlaneMetrics): Promise<Map<string, Set<string>>> {
  const byRun = new Map<string, Set<string>>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    for (const v of metric.values) {
      const run = v.labels.run;
      if (run === undefined) continue;
      const names = byRun.get(String(run)) ?? new Set<string>();
      names.add(`${(v as { metricName?: string }).metricName ?? metric.name}${JSON.stringify(v.labels)}`);
      byRun.set(String(run), names);
    }
  }
  return byRun;
}

describe('ControlPlaneMetrics.forgetRun', () => {
  it('removes every series of the run, whichever metric holds it, and keeps the others', async () => {
    const m = populated();
    const before = await runsExported(m);
    expect(before.get('a')?.size).toBeGreaterThan(15);
    expect([...(before.get('b') ?? [])].map((k) => k.replace('"run":"b"', '"run":"a"'))).toEqual([...(before.get('a') ?? [])]);

    const removed = await m.forgetRun('a');
    expect(removed).toBeGreaterThan(15);
    const after = await runsExported(m);
    expect(after.has('a')).toBe(false);
    expect(after.get('b')).toEqual(before.get('b'));
    expect(await m.forgetRun('a')).toBe(0);
  });

  it('a forgotten run is not exported again when it is read later, until it is followed again', async () => {
    const m = populated();
    await m.forgetRun('a');
    m.observeSnapshot('a', snapshot(5));
    m.observeGenerationStats('a', { tokens: '200' });
    expect((await runsExported(m)).has('a')).toBe(false);
    // A run re-created under the same name (RLRun deleted and applied again),
    // or resumed by this replica when it leads again.
    m.follow('a');
    m.observeSnapshot('a', snapshot(1));
    expect((await runsExported(m)).get('a')?.size).toBeGreaterThan(5);
  });
});
