/**
 * End-to-end tests of the generation side: a real control plane
 * (TANDEM_RUNTIME=none), real Redis, simulated vLLM generators, rollout
 * workers and the simulated trainer, all as processes on loopback, started
 * by the test. Each scenario submits its own run (no `spec.simulation`, so
 * the control plane starts nothing), registers its generators over the
 * HTTP API, and checks the run's outcome through the same surfaces an
 * operator has: the run status and ledger, the generator registry,
 * /metrics, the simulators' own counters and the trainer's report (the
 * trainer validates every batch it receives: G completions per group,
 * token ids and logprobs of equal length, 0 ≤ age ≤ k; it exits non-zero
 * on a bad batch). Time limits are limits, never assertions.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceProcess } from '@tandem/testkit';
import { metricSum, type GeneratorView, type RunStatusView, type Sample } from './support/control-plane-api.js';
import { GenerationRig, runSpec, type SimGenerator, type TrainerReport } from './support/generation-rig.js';
import { GeneratorWatch } from './support/generator-watch.js';
import { HangingUpdateProxy } from './support/hanging-update-proxy.js';
import { waitFor, within } from './support/processes.js';

const rig = new GenerationRig();
const proxies: HangingUpdateProxy[] = [];

beforeAll(async () => {
  await rig.start();
}, 60_000);

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await rig.book.killAll();
});

afterAll(async () => {
  await rig.stop();
}, 60_000);

/**
 * Limit on one run, start to finish: normally a few seconds, but generous
 * for a loaded 2-core machine (a limit, never an expectation).
 */
const RUN_LIMIT_MS = 150_000;

/**
 * With 30 % of requests faulted, 5 attempts (the default) fail a completion
 * — and its whole group — with probability 0.3^5 ≈ 0.24 %, about one group
 * in three runs here; 10 attempts make that ≈ 6·10⁻⁶ per completion.
 */
const FAULTY_WORKER_ENV = { TANDEM_MAX_ATTEMPTS: '10' };

interface Finished {
  report: TrainerReport;
  status: RunStatusView;
  metrics: Sample[];
  generators: GeneratorView[];
}

/** Starts three simulated generators and registers them with the run. */
async function startGenerators(runId: string, flags: string[] = []): Promise<SimGenerator[]> {
  const gens = await Promise.all(['g0', 'g1', 'g2'].map((id) => rig.startGenerator(id, flags)));
  for (const g of gens) await rig.api.registerGenerator(runId, g.id, g.url);
  return gens;
}

/**
 * Waits for the trainer's report, then for the workers (they stop by
 * themselves once the run has ended, flushing their request counters to
 * Redis), then for the weight sync to settle, then reads status (which also
 * brings the run's /metrics series up to date), metrics and the registry.
 */
async function finish(runId: string, report: Promise<TrainerReport>, workers: ServiceProcess[]): Promise<Finished> {
  const r = await report;
  const exits = await within(Promise.all(workers.map((w) => w.exited)), 60_000, 'rollout workers did not stop after the run ended');
  expect(exits.map((e) => e.code)).toEqual(workers.map(() => 0));
  const generators = await settledGenerators(runId);
  const status = await rig.api.status(runId);
  return { report: r, status, metrics: await rig.api.metrics(), generators };
}

/**
 * The registry once the run's weight sync has stopped. A sync that was under
 * way when the last step was acked still completes (its deadline bounds it),
 * so right after the run ends a generator may still be `syncing`: wait until
 * two reads 300 ms apart agree and show no sync in progress.
 */
async function settledGenerators(runId: string): Promise<GeneratorView[]> {
  const view = (gs: GeneratorView[]): string => JSON.stringify(gs.map((g) => [g.id, g.state, g.policyVersion, g.url]));
  let last = '';
  return waitFor(
    'the weight sync to settle after the run ended',
    async () => {
      const first = await rig.api.generators(runId);
      await new Promise((res) => setTimeout(res, 300));
      const second = await rig.api.generators(runId);
      last = view(second);
      const settled = view(first) === last && second.every((g) => g.state !== 'syncing');
      return settled ? second : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 0, describe: () => last },
  );
}

/** The run trained every step, nothing was lost, and every batch respected k. */
function expectTrainedWithinBound(runId: string, f: Finished, spec: { maxSteps: number; batchGroups: number; k: number }): void {
  const { report, status, metrics } = f;
  const trainedGroups = spec.maxSteps * spec.batchGroups;
  expect(report.outcome).toBe('finished');
  expect(report.steps).toBe(spec.maxSteps);
  expect(report.groups).toBe(trainedGroups);
  // Staleness, seen by the trainer (per group, over every batch) ...
  expect(report.ages.max).toBeLessThanOrEqual(spec.k);
  expect(Object.keys(report.ages.histogram).map(Number).every((age) => age >= 0 && age <= spec.k)).toBe(true);
  // ... and by the control plane's histogram: every served group in a bucket ≤ k.
  const ageCount = metricSum(metrics, 'tandem_trajectory_age_steps_count', { run: runId });
  expect(ageCount).toBe(trainedGroups);
  expect(metricSum(metrics, 'tandem_trajectory_age_steps_bucket', { run: runId, le: String(spec.k) })).toBe(ageCount);
  // The ledger balances: every admitted group ended in exactly one outcome.
  expect(status.phase).toBe('Succeeded');
  expect(status.trainerStep).toBe(spec.maxSteps);
  const l = status.ledger;
  expect(status.inFlight).toBe(0);
  expect(status.queueDepth).toBe(0);
  expect(l.admitted).toBe(l.trained + l.droppedStale + l.failed + l.cancelled);
  expect(l.trained).toBe(trainedGroups);
  expect(metricSum(metrics, 'tandem_groups_total', { run: runId, outcome: 'trained' })).toBe(trainedGroups);
}

/** Generators that are `ready` at the run's published version, and serve it. */
async function expectReadyAt(f: Finished, ids: string[], urls: Map<string, string>): Promise<void> {
  for (const id of ids) {
    const g = f.generators.find((x) => x.id === id);
    expect(g, `generator ${id} in the registry`).toBeDefined();
    expect({ id, state: g?.state, policyVersion: g?.policyVersion }).toEqual({ id, state: 'ready', policyVersion: f.status.policyVersion });
    expect(await rig.servedVersion(urls.get(id) as string)).toBe(f.status.policyVersion);
  }
}

describe('generation side, end to end (real processes)', () => {
  it('a: trains to maxSteps with every batch within k, a balanced ledger, and every weight sync reaching every generator', async () => {
    const runId = 'gen-a';
    const spec = { maxSteps: 8, batchGroups: 4, k: 1 };
    await rig.api.submitRun(runId, runSpec({ ...spec, groupSize: 4 }));
    // g1 behaves like vLLM ≤ 0.25 (packing settings per update, refused at
    // init); the others like current vLLM. The coordinator learns which is
    // which when they join, and every sync reaches all three.
    const gens = await Promise.all(['g0', 'g1', 'g2'].map((id) => rig.startGenerator(id, id === 'g1' ? ['--packing-placement', 'update'] : [])));
    for (const g of gens) await rig.api.registerGenerator(runId, g.id, g.url);
    const [workers, trainer] = await Promise.all([rig.startWorkers(runId, 2), rig.startTrainer(runId)]);
    const f = await finish(runId, trainer.report(RUN_LIMIT_MS), workers);

    expectTrainedWithinBound(runId, f, spec);
    expect(f.status.ledger).toMatchObject({ failed: 0, cancelled: 0 });

    // Weights: every sync succeeded and reached all three generators.
    const ok = metricSum(f.metrics, 'tandem_weight_syncs_total', { run: runId, result: 'ok' });
    expect(ok).toBeGreaterThanOrEqual(1);
    expect(metricSum(f.metrics, 'tandem_weight_syncs_total', { run: runId, result: 'partial' })).toBe(0);
    expect(metricSum(f.metrics, 'tandem_weight_syncs_total', { run: runId, result: 'failed' })).toBe(0);
    expect(f.report.weightSyncs).toBe(ok); // one trainer broadcast per sync
    for (const g of gens) {
      const stats = await rig.simStats(g.url);
      expect({ id: g.id, updatesFinished: stats.weights.updatesFinished, paused: stats.weights.paused }).toEqual({
        id: g.id,
        updatesFinished: ok,
        paused: false,
      });
    }
    // The final published version is the one every generator holds and serves;
    // the last batch (step maxSteps − 1) could only be generated with a
    // version ≥ maxSteps − 1 − k, so generators got at least that far.
    expect(f.status.policyVersion).toBeGreaterThanOrEqual(spec.maxSteps - 1 - spec.k);
    await expectReadyAt(f, ['g0', 'g1', 'g2'], new Map(gens.map((g) => [g.id, g.url])));
    for (const g of gens) {
      expect(metricSum(f.metrics, 'tandem_generator_policy_version', { run: runId, generator: g.id })).toBe(f.status.policyVersion);
    }
  }, 300_000);

  it('b: survives a SIGKILLed generator, which leaves the group and rejoins at the current version after a restart', async () => {
    const runId = 'gen-b';
    const spec = { maxSteps: 16, batchGroups: 4, k: 1 };
    await rig.api.submitRun(runId, runSpec({ ...spec, groupSize: 4, weightSyncTimeoutMs: 5000 }));
    const gens = await startGenerators(runId);
    const watch = new GeneratorWatch(rig.api, runId);
    const [workers, trainer] = await Promise.all([rig.startWorkers(runId, 2), rig.startTrainer(runId)]);
    const victim = gens[1] as SimGenerator;

    // Mid-run, while the victim is generating: kill it (no shutdown, like an OOM kill).
    await waitFor('trainer step 2', async () => ((await rig.api.status(runId)).trainerStep >= 2 ? true : undefined), { timeoutMs: 90_000 });
    await waitFor(
      'requests in flight on the victim',
      async () => {
        const { engine } = await rig.simStats(victim.url);
        return engine.waiting + engine.prefilling + engine.decoding > 0 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 10 },
    );
    victim.process.child.kill('SIGKILL');
    // Hold the trainer so that the run cannot end before the restarted
    // generator is back (a gate, not a timing assumption). Generation goes on.
    trainer.process.child.kill('SIGSTOP');
    let stopped = true;
    try {
      await victim.process.exited;
      const out = await waitFor(
        'the killed generator to leave the group (unhealthy)',
        async () => (await rig.api.generators(runId)).find((g) => g.id === 'g1' && g.state === 'unhealthy'),
        { timeoutMs: 60_000 },
      );
      expect(out.reason).toBeTruthy();

      // Restart it: a new process on a new port, registered under the same id.
      const restarted = await rig.startGenerator('g1');
      const registered = await rig.api.registerGenerator(runId, 'g1', restarted.url);
      expect(registered).toMatchObject({ id: 'g1', state: 'joining', policyVersion: -1 });
      trainer.process.child.kill('SIGCONT');
      stopped = false;

      const f = await finish(runId, trainer.report(RUN_LIMIT_MS), workers);
      await watch.stop();
      expectTrainedWithinBound(runId, f, spec);
      // Nothing lost: requests that died with the victim were generated again elsewhere.
      expect(f.status.ledger).toMatchObject({ failed: 0, cancelled: 0 });
      expect(metricSum(f.metrics, 'tandem_generation_requests_total', { run: runId, code: 'error' })).toBeGreaterThan(0);

      // The registry saw g1 leave (unhealthy at its old URL), then serve again
      // at its new URL (it was `joining` in between: see the register answer).
      const seen = watch.of('g1');
      const unhealthyAt = seen.findIndex((o) => o.state === 'unhealthy' && o.url === victim.url);
      const readyAgainAt = seen.findIndex((o, i) => i > unhealthyAt && o.state === 'ready' && o.url === restarted.url);
      expect(unhealthyAt, JSON.stringify(seen)).toBeGreaterThanOrEqual(0);
      expect(readyAgainAt, JSON.stringify(seen)).toBeGreaterThan(unhealthyAt);
      // Back in the group before the run ended: the coordinator syncs only
      // open runs, so `ready` at the final version means a sync reached it
      // while the run was still training.
      const urls = new Map([['g0', (gens[0] as SimGenerator).url], ['g1', restarted.url], ['g2', (gens[2] as SimGenerator).url]]);
      await expectReadyAt(f, ['g0', 'g1', 'g2'], urls);
      expect((await rig.simStats(restarted.url)).weights.updatesFinished).toBeGreaterThanOrEqual(1);
    } finally {
      if (stopped) trainer.process.child.kill('SIGCONT');
      await watch.stop().catch(() => undefined);
    }
  }, 300_000);

  it('c: cuts off a generator that hangs its weight update at the deadline; the sync completes for the rest', async () => {
    const runId = 'gen-c';
    const spec = { maxSteps: 5, batchGroups: 4, k: 1 };
    // The transfer gets 3/4 of it (2250 ms): the hanging update is cut off
    // then, and finish/resume of the others share the last 750 ms.
    const timeoutMs = 3000;
    await rig.api.submitRun(runId, runSpec({ ...spec, groupSize: 4, weightSyncTimeoutMs: timeoutMs }));
    const gens = await Promise.all(['g0', 'g1', 'g2'].map((id) => rig.startGenerator(id)));
    const hanging = await HangingUpdateProxy.start((gens[2] as SimGenerator).url);
    proxies.push(hanging);
    await rig.api.registerGenerator(runId, 'g0', (gens[0] as SimGenerator).url);
    await rig.api.registerGenerator(runId, 'g1', (gens[1] as SimGenerator).url);
    await rig.api.registerGenerator(runId, 'g2', hanging.url);
    const watch = new GeneratorWatch(rig.api, runId);
    const [workers, trainer] = await Promise.all([rig.startWorkers(runId, 2), rig.startTrainer(runId)]);
    const f = await finish(runId, trainer.report(RUN_LIMIT_MS), workers);
    await watch.stop();

    expectTrainedWithinBound(runId, f, spec);
    expect(f.status.ledger).toMatchObject({ failed: 0, cancelled: 0 });
    expect(hanging.hungUpdates).toBeGreaterThanOrEqual(1);
    // Cut off at the deadline, for a reason that says so (on a machine too
    // loaded to answer /health within its 500 ms timeout, health checks may
    // take it out too; no other reason is acceptable) ...
    const cut = watch.of('g2').filter((o) => o.state === 'unhealthy');
    expect(cut.some((o) => /^update: POST \S+\/update_weights missed its \d+ ms deadline \(may rejoin in \d+ s\)$/.test(o.reason ?? '')), JSON.stringify(cut)).toBe(true);
    for (const o of cut) expect(o.reason).toMatch(/^update: .*missed its \d+ ms deadline \(may rejoin in \d+ s\)$|^\d+ failed health checks$/);
    // ... never served (it never finished an update) ...
    expect(watch.of('g2').some((o) => o.state === 'ready')).toBe(false);
    const g2 = f.generators.find((g) => g.id === 'g2');
    expect(g2?.policyVersion).toBe(-1);
    // ... while the syncs completed for the others: partial, not failed.
    expect(metricSum(f.metrics, 'tandem_weight_syncs_total', { run: runId, result: 'partial' })).toBeGreaterThanOrEqual(1);
    expect(metricSum(f.metrics, 'tandem_weight_syncs_total', { run: runId, result: 'failed' })).toBe(0);
    // The others were never cut off from a sync (finish and resume had time
    // left after the hanging update's deadline).
    for (const id of ['g0', 'g1']) {
      const syncCutOffs = watch.of(id).filter((o) => o.state === 'unhealthy' && !/failed health checks$/.test(o.reason ?? ''));
      expect(syncCutOffs, id).toEqual([]);
    }
    await expectReadyAt(f, ['g0', 'g1'], new Map([['g0', (gens[0] as SimGenerator).url], ['g1', (gens[1] as SimGenerator).url]]));
    // The cut-off is in the run's journal, with the phase and the deadline.
    const journal = await rig.api.events(runId);
    expect(journal.some((e) => e.type === 'Warning' && e.reason === 'GeneratorCutOff' && /^g2 cut off from the weight sync to version \d+: update: .*deadline/.test(e.message)), JSON.stringify(journal)).toBe(true);
  }, 300_000);

  it('d: rides out injected 429s with backoff: no lost prompts, and the 429s are counted', async () => {
    const runId = 'gen-d';
    const spec = { maxSteps: 6, batchGroups: 4, k: 1 };
    await rig.api.submitRun(runId, runSpec({ ...spec, groupSize: 4 }));
    const gens = await startGenerators(runId, ['--rate-limit-fraction', '0.3', '--retry-after-seconds', '0']);
    const [workers, trainer] = await Promise.all([rig.startWorkers(runId, 2, FAULTY_WORKER_ENV), rig.startTrainer(runId)]);
    const f = await finish(runId, trainer.report(RUN_LIMIT_MS), workers);

    expectTrainedWithinBound(runId, f, spec);
    expect(f.status.ledger).toMatchObject({ failed: 0, cancelled: 0 });
    const injected = (await Promise.all(gens.map((g) => rig.simStats(g.url)))).reduce((a, s) => a + s.requests.injectedRateLimits, 0);
    const counted = metricSum(f.metrics, 'tandem_generation_requests_total', { run: runId, code: '429' });
    expect(counted).toBeGreaterThan(0);
    // Every 429 a generator sent was seen, counted and retried by a worker.
    expect(counted).toBe(injected);
  }, 300_000);

  it('e: rejects malformed generator answers with a logged reason and retries; only valid groups are trained', async () => {
    const runId = 'gen-e';
    const spec = { maxSteps: 6, batchGroups: 4, k: 1 };
    await rig.api.submitRun(runId, runSpec({ ...spec, groupSize: 4 }));
    const gens = await startGenerators(runId, ['--malformed-fraction', '0.3']);
    const [workers, trainer] = await Promise.all([
      rig.startWorkers(runId, 2, { ...FAULTY_WORKER_ENV, TANDEM_LOG_LEVEL: 'debug' }),
      rig.startTrainer(runId),
    ]);
    const f = await finish(runId, trainer.report(RUN_LIMIT_MS), workers);

    // The trainer checked every served group (decodes, G completions, as many
    // logprobs as token ids, age within k) and would have exited non-zero.
    expectTrainedWithinBound(runId, f, spec);
    expect(f.status.ledger).toMatchObject({ failed: 0, cancelled: 0 });
    const injected = (await Promise.all(gens.map((g) => rig.simStats(g.url)))).reduce((a, s) => a + s.requests.injectedMalformed, 0);
    const counted = metricSum(f.metrics, 'tandem_generation_requests_total', { run: runId, code: 'malformed' });
    expect(counted).toBeGreaterThan(0);
    expect(counted).toBe(injected);
    // Each rejection is logged with its reason.
    const logs = workers.map((w) => w.logs()).join('\n');
    const reasons = logs
      .split('\n')
      .filter((line) => line.includes('completion attempt failed; retrying'))
      .map((line) => (JSON.parse(line) as { reason: string }).reason)
      .filter((r) => r.startsWith('malformed response from'));
    expect(reasons.length).toBe(counted);
    expect(reasons.some((r) => /not valid JSON/.test(r))).toBe(true);
  }, 300_000);
});
