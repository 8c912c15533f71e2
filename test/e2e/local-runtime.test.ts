import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { CLI_MAIN, REPO_ROOT, assertCliBuilt, runCli, startTandemUp, type TandemUp } from './support-cli/cli-process.js';
import { descendants, stillRunning, type ProcInfo } from './support-cli/process-tree.js';
import { parsePrometheusText } from '@tandem/cli';
import { histogramAtMost } from './support-cli/prometheus-text.js';
import { httpJson, waitFor } from './support-cli/wait.js';

/**
 * End-to-end tests of the local runtime: synchronous vs asynchronous RL on
 * one workload, Ctrl-C cleanup of the whole process tree, and resizing a
 * running run's generator pool. Real `tandem` processes, real simulated
 * generators, rollout workers and trainer as child processes, real Redis,
 * everything on 127.0.0.1. Timeouts are limits, never expectations.
 */

beforeAll(() => assertCliBuilt());

describe('tandem demo --compare-sync', () => {
  let redis: RedisServerHandle;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('runs the workload synchronously (k = 0) and then asynchronously, and reports the speedup next to its ideal bound', async () => {
    const steps = 10;
    const r = await runCli(['demo', '--json', '--compare-sync', '--steps', String(steps), '--redis-url', redis.url], { timeoutMs: 400_000 });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0] as string);
    expect(r.stderr).toMatch(/sync {2}k=0 \[/);
    expect(r.stderr).toMatch(/async k=1 \[/);

    const { sync } = out;
    expect(sync).toBeTypeOf('object');
    expect(typeof out.speedup).toBe('number');
    expect(typeof out.idealSpeedup).toBe('number');
    for (const run of [sync, out]) {
      expect(run.simulated).toBe(true);
      expect(run.phase).toBe('Succeeded');
      expect(run.steps).toBe(steps);
      expect(run.groupsDroppedStale).toBe(0);
      expect(run.groupsAdmitted).toBe(run.groupsTrained + run.groupsDroppedStale + run.groupsFailed + run.groupsCancelled);
      expect(run.groupsTrained).toBe(steps * 16);
    }
    expect(sync.runId).not.toBe(out.runId);
    // Synchronous RL: every group trained with the weights that generated it.
    expect(sync.maxTrajectoryAgeSteps).toBe(0);
    expect(sync.maxAgeObserved).toBe(0);
    expect(sync.meanAge).toBe(0);
    expect(out.maxTrajectoryAgeSteps).toBe(1);
    expect(out.maxAgeObserved).toBeLessThanOrEqual(1);

    // The figures are consistent with each other (timing-free checks).
    expect(out.speedup).toBeCloseTo(sync.wallSeconds / out.wallSeconds, 1);
    expect(out.idealSpeedup).toBeGreaterThanOrEqual(1);
    expect(out.idealSpeedup).toBeLessThanOrEqual(2);
    expect(out.idealSpeedup).toBeCloseTo(
      (sync.meanWaitSecondsPerStep + sync.meanTrainSecondsPerStep) / Math.max(sync.meanWaitSecondsPerStep, sync.meanTrainSecondsPerStep),
      2,
    );
    // Overlapping generation with training leaves the trainer idle less.
    expect(out.trainerIdleRatio).toBeLessThan(sync.trainerIdleRatio);
    console.log(
      `compare-sync (${steps} steps, simulated): speedup ${out.speedup.toFixed(2)}x, ideal ${out.idealSpeedup.toFixed(2)}x ` +
        `(${((out.speedupOverIdeal ?? 0) * 100).toFixed(0)}% of ideal); trainer idle async ${out.trainerIdleRatio} vs sync ${sync.trainerIdleRatio}; ` +
        `wall ${out.wallSeconds} s vs ${sync.wallSeconds} s`,
    );
  }, 420_000);
});

describe('Ctrl-C in the middle of tandem demo', () => {
  it('stops every process it started, the embedded redis-server included', async () => {
    // A port with nothing listening: the demo must start its embedded Redis.
    const noRedis = `redis://127.0.0.1:${await freePort()}`;
    const cli = spawn(process.execPath, [CLI_MAIN, 'demo', '--steps', '200', '--redis-url', noRedis], {
      cwd: REPO_ROOT,
      env: { ...process.env, TANDEM_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const cliPid = cli.pid as number;
    let stderr = '';
    cli.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    cli.stdout.resume();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      cli.once('exit', (code, signal) => resolve({ code, signal })),
    );
    let recorded: ProcInfo[] = [];
    try {
      // Progress on stderr, then the whole tree: Redis, 4 generators, 2 workers, the trainer.
      await waitFor(() => /step\s+\d+\/200/.test(stderr), { timeoutMs: 120_000, what: 'demo progress on stderr' });
      expect(stderr).toContain('(embedded)');
      recorded = await waitFor(
        () => {
          const tree = descendants(cliPid);
          const count = (pattern: RegExp): number => tree.filter((p) => pattern.test(p.cmdline)).length;
          const complete =
            tree.some((p) => p.comm === 'redis-server') &&
            count(/generator-main\.js/) === 4 &&
            count(/rollout-worker\/dist\/main\.js/) === 2 &&
            count(/trainer-main\.js/) === 1;
          return complete ? tree : undefined;
        },
        { timeoutMs: 60_000, what: 'the demo’s child processes (redis-server, 4 generators, 2 workers, trainer)' },
      );
      expect(recorded.every((p) => stillRunning(p))).toBe(true);

      cli.kill('SIGINT');
      const { code, signal } = await Promise.race([
        exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the CLI did not exit within 60 s of SIGINT:\n${stderr.slice(-3000)}`)), 60_000)),
      ]);
      expect(signal, stderr.slice(-3000)).toBeNull();
      expect([0, 130], stderr.slice(-3000)).toContain(code);
      expect(stderr).toContain('stopping');

      // The CLI waits for its children before it exits, so they are gone by
      // now; the bounded wait only absorbs the kernel reaping them.
      const leftovers = await waitFor(
        () => {
          const alive = recorded.filter((p) => stillRunning(p));
          return alive.length === 0 ? [] : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: 'every process the demo started to be gone' },
      ).catch(() => recorded.filter((p) => stillRunning(p)));
      expect(leftovers.map((p) => `${p.pid} ${p.cmdline}`)).toEqual([]);
    } finally {
      // Whatever happened, leave nothing behind.
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
      for (const p of recorded) if (stillRunning(p)) process.kill(p.pid, 'SIGKILL');
    }
  }, 300_000);
});

describe('scaling a running run’s generator pool (tandem up + tandem runs scale)', () => {
  let redis: RedisServerHandle;
  let up: TandemUp;
  beforeAll(async () => {
    redis = await startRedisServer();
    up = await startTandemUp(redis.url);
  }, 120_000);
  afterAll(async () => {
    await up?.stop();
    await redis?.stop();
  });

  it('grows 2 → 4 and shrinks to 1 while training; every generator serves only once it holds the current weights', async () => {
    const runId = 'scale-e2e';
    const maxSteps = 40;
    const batchGroups = 8;
    const k = 1;
    const spec = {
      name: 'scaling e2e',
      model: { name: 'sim-7b' },
      dataset: { source: 'builtin', name: 'arithmetic', size: 1000, seed: 7 },
      reward: { kind: 'numeric' },
      algorithm: { groupSize: 4, batchGroups, maxTokens: 256 },
      async: { maxTrajectoryAgeSteps: k, weightSync: { timeoutMs: 30_000 } },
      maxSteps,
      generator: { replicas: 2 },
      rolloutWorkers: { replicas: 1, concurrency: 64 },
      // No restarts: a process that crashes fails the run, and the test with it.
      failurePolicy: { maxRestarts: 0 },
      simulation: {
        timeScale: 0.05,
        seed: 7,
        generator: { medianOutputTokens: 64 },
        // At least 0.3 s of wall time a step, so the run outlasts the scaling.
        trainer: { stepOverheadMs: 6000, msPerKiloToken: 50 },
      },
    };
    const base = up.httpUrl;
    await httpJson('POST', `${base}/v1/runs`, { spec, runId });

    const monitor = new GeneratorMonitor(base, runId);
    monitor.start();
    let stepAtScaleDown = -1;
    try {
      const status = async (): Promise<any> => (await httpJson('GET', `${base}/v1/runs/${runId}`)).status;

      // Scale up only once the run is a few versions in: a generator that
      // served with its initial weights (version 0) would then produce groups
      // too old for their target step, which the ledger would count as dropped.
      await waitFor(async () => ((await status()).trainerStep ?? 0) >= k + 2, { timeoutMs: 120_000, what: `trainer step ${k + 2}` });
      const up4 = await runCli(['runs', 'scale', runId, '--generators', '4', '--server', base, '-o', 'json'], { timeoutMs: 120_000 });
      expect(up4.code, up4.stderr).toBe(0);
      const scaled = JSON.parse(up4.stdout) as { spec: { generator: { replicas: number } }; status: { generators: { desired: number } } };
      expect(scaled.spec.generator.replicas).toBe(4);
      expect(scaled.status.generators.desired).toBe(4);

      await waitFor(() => monitor.maxReadyAtOnce >= 4, { timeoutMs: 120_000, intervalMs: 50, what: '4 generators ready at once' });
      // The newcomers really serve (so the checks below had something to check).
      await waitFor(() => ['gen-2', 'gen-3'].every((id) => (monitor.lastStats.get(id)?.requests.completionRequests ?? 0) > 0), {
        timeoutMs: 120_000,
        intervalMs: 50,
        what: 'gen-2 and gen-3 to serve completions',
      });
      stepAtScaleDown = (await status()).trainerStep ?? 0;
      expect(stepAtScaleDown, 'the run ended before the pool could shrink; give it more steps').toBeLessThan(maxSteps);

      const down1 = await runCli(['runs', 'scale', runId, '--generators', '1', '--server', base, '-o', 'json'], { timeoutMs: 120_000 });
      expect(down1.code, down1.stderr).toBe(0);
      const left = (await httpJson('GET', `${base}/v1/runs/${runId}/generators`)).generators as Array<{ id: string }>;
      expect(left.map((g) => g.id)).toEqual(['gen-0']);
      // The removed generators' processes are gone: their servers no longer answer.
      for (const id of ['gen-1', 'gen-2', 'gen-3']) {
        const url = monitor.urls.get(id);
        expect(url, `url of ${id}`).toBeDefined();
        await expect(fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
      }

      // The run goes on with one generator to the end.
      const watch = await runCli(['runs', 'watch', runId, '--server', base, '-o', 'json'], { timeoutMs: 300_000 });
      expect(watch.code, watch.stderr).toBe(0);
      const last = JSON.parse(watch.stdout.trim().split('\n').at(-1) as string) as { status: { phase: string } };
      expect(last.status.phase).toBe('Succeeded');
    } finally {
      await monitor.stop();
    }

    const run = await httpJson('GET', `${base}/v1/runs/${runId}`);
    const s = run.status;
    const l = s.ledger;
    expect(s.phase).toBe('Succeeded');
    expect(s.trainerStep).toBe(maxSteps);
    // No prompt lost: every admitted group ended in exactly one outcome.
    const n = (x: number | undefined): number => x ?? 0; // proto JSON omits zeros
    expect(n(l.admitted)).toBe(n(l.trained) + n(l.droppedStale) + n(l.failed) + n(l.cancelled));
    expect(n(l.trained)).toBe(maxSteps * batchGroups);
    expect(n(l.failed)).toBe(0);
    // Simulated generators stamp completions with the version they really
    // hold: one serving before its first sync would have stamped version 0.
    expect(n(l.droppedStale)).toBe(0);
    const ages = histogramAtMost(parsePrometheusText(await (await fetch(`${base}/metrics`)).text()), 'tandem_trajectory_age_steps', runId, k);
    expect(ages.count).toBe(n(l.trained));
    expect(ages.atMost).toBe(ages.count);

    // What the monitor saw while the pool changed.
    expect(monitor.errors).toEqual([]);
    expect(monitor.violations).toEqual([]);
    expect(monitor.samples).toBeGreaterThan(10);
    expect([...monitor.urls.keys()].sort()).toEqual(['gen-0', 'gen-1', 'gen-2', 'gen-3']);
    // Each newcomer was seen joining (not serving, no version) before it was ready.
    for (const id of ['gen-2', 'gen-3']) {
      const states = monitor.states.get(id) ?? [];
      expect(states[0], `first state of ${id}: ${states.join(' → ')}`).toBe('joining');
      expect(states, `${id}: ${states.join(' → ')}`).toContain('ready');
    }
    // The per-sample checks had teeth: a newcomer was caught before its first update.
    expect(['gen-2', 'gen-3'].some((id) => monitor.seenBeforeFirstUpdate.has(id))).toBe(true);
    console.log(
      `scaling e2e: scale-down at step ${stepAtScaleDown}; ${monitor.samples} registry samples; ` +
        `newcomers sampled before their first weight update: ${[...monitor.seenBeforeFirstUpdate].sort().join(', ') || 'none'}`,
    );
  }, 600_000);
});

/** What a simulated generator's /tandem/stats reports (the parts checked here). */
interface SimStats {
  weights: { policyVersion: number; updatesFinished: number };
  requests: { completionRequests: number; completionsAnswered: number };
}

interface GeneratorRecordJson {
  id: string;
  url: string;
  state: string;
  policyVersion: number;
}

/**
 * Polls a run's generator registry and every generator's own /tandem/stats
 * while the test scales the pool, and records any breach of "a generator
 * serves only after it holds the current weights":
 * - the registry never shows a generator `ready` without a version (rollout
 *   workers send requests to `ready`, and to `syncing` at a version ≥ 0);
 * - a generator never answers a completion request before it has finished a
 *   weight update (its counters are read in one snapshot);
 * - the version the registry gives a generator is one it holds (read after
 *   the registry, so its own version can only be newer).
 */
class GeneratorMonitor {
  readonly violations: string[] = [];
  readonly errors: string[] = [];
  readonly urls = new Map<string, string>();
  readonly states = new Map<string, string[]>();
  readonly lastStats = new Map<string, SimStats>();
  readonly seenBeforeFirstUpdate = new Set<string>();
  maxReadyAtOnce = 0;
  samples = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly base: string,
    private readonly runId: string,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.sample();
      } catch (err) {
        // The registry read must not fail while the run lives.
        this.errors.push(err instanceof Error ? err.message : String(err));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async sample(): Promise<void> {
    const { generators } = await httpJson<{ generators: GeneratorRecordJson[] }>('GET', `${this.base}/v1/runs/${this.runId}/generators`);
    this.samples++;
    let ready = 0;
    for (const g of generators) {
      this.urls.set(g.id, g.url);
      const states = this.states.get(g.id) ?? [];
      if (states.at(-1) !== g.state) states.push(g.state);
      this.states.set(g.id, states);
      if (g.state === 'ready') ready++;
      // `syncing` at −1 is a joiner receiving its first weights: not serving.
      if (g.state === 'ready' && g.policyVersion < 0) {
        this.violations.push(`registry: ${g.id} is ready with policyVersion ${g.policyVersion}`);
      }
    }
    this.maxReadyAtOnce = Math.max(this.maxReadyAtOnce, ready);
    await Promise.all(
      generators.map(async (g) => {
        let stats: SimStats;
        try {
          const res = await fetch(`${g.url}/tandem/stats`, { signal: AbortSignal.timeout(2000) });
          stats = (await res.json()) as SimStats;
        } catch {
          return; // being removed, or busy: the next sample reads it
        }
        this.lastStats.set(g.id, stats);
        const { updatesFinished, policyVersion } = stats.weights;
        if (updatesFinished === 0) this.seenBeforeFirstUpdate.add(g.id);
        if (stats.requests.completionRequests > 0 && updatesFinished === 0) {
          this.violations.push(`${g.id} received ${stats.requests.completionRequests} completion requests before its first weight update`);
        }
        if ((g.state === 'ready' || g.state === 'syncing') && policyVersion < g.policyVersion) {
          this.violations.push(`${g.id}: registry says ${g.state} at v${g.policyVersion}, the generator holds v${policyVersion}`);
        }
      }),
    );
  }
}

