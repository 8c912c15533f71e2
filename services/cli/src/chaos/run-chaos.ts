import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@tandem/common';
import type { ControlPlane } from '@tandem/control-plane';
import { runKeys, type RolloutStore } from '@tandem/rollout-queue';
import { InProcessDeployment, ReplicaDeployment, type ChaosDeployment } from './chaos-deployment.js';
import { CHAOS_MAX_AGE_STEPS, CHAOS_MODES, chaosRunSpec, type ChaosMode } from './chaos-spec.js';
import { auditLedger, readTrainedRecord, type LedgerAudit } from './ledger-audit.js';
import { createPrng, type Prng } from './prng.js';
import { RestartableRedis } from './restartable-redis.js';
import { selectScenarios, type ChaosProcess, type ChaosScenario, type ChaosTargets, type ProcessRole } from './scenarios.js';

/** Options of one chaos suite run. */
export interface ChaosOptions {
  mode: ChaosMode;
  /** Seed of the fault moments, the victims and the runs' datasets. */
  seed: number;
  /** Scenario names to run; empty: all. */
  scenarios: readonly string[];
  log: Logger;
  /** Aborting cancels the scenario's run and stops everything started. */
  signal?: AbortSignal;
  /** One line per event worth showing while the suite runs (fault injected, scenario done). */
  onProgress?: (line: string) => void;
}

/** How one scenario ended. `passed` needs a Succeeded run and a clean audit. */
export interface ScenarioOutcome extends Omit<LedgerAudit, 'problems'> {
  name: string;
  passed: boolean;
  /** The run's final phase (or `TimedOut`). */
  phase: string;
  /** Steps the trainer acked. */
  steps: number;
  /** What was injected, in order. */
  faults: string[];
  /** Process restarts by role, as the local runtime counted them. */
  restarts: Record<string, number>;
  /** Leader-election takeovers (scenarios with control-plane replicas; 0 otherwise). */
  takeovers: number;
  /** Each leader kill's failover, in ms from the kill (scenarios with control-plane replicas). */
  failovers: FailoverTiming[];
  wallSeconds: number;
  /** Why it did not pass (empty when it passed). */
  problems: string[];
}

/** How long one failover took, each time measured from the kill -9 of the leader. */
export interface FailoverTiming {
  /** The trainer step just before the kill. */
  atStep: number;
  /** Until the standby held the leader lock (bounded below by the lease). */
  leadingMs: number;
  /** Until the standby had taken the open runs over (their processes started again). */
  resumedMs: number;
  /** Until the first step trained after the kill; null if none was. */
  firstStepMs: number | null;
}

/** The suite's result (`tandem chaos --json`). */
export interface ChaosReport {
  mode: ChaosMode;
  seed: number;
  passed: boolean;
  scenarios: ScenarioOutcome[];
  /** Everything here ran on simulated generators and a simulated trainer. */
  simulated: true;
}

const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);
const POLL_MS = 100;

/**
 * Runs the chaos suite: each scenario gets its own redis-server (AOF on),
 * an in-process control plane with the local runtime (or, for a scenario
 * with `controlPlane: 'replicas'`, a leader and a standby replica as
 * processes, see {@link ReplicaDeployment}) and one simulated run
 * with several generators and rollout workers; at seeded moments (trainer
 * steps, plus a seeded delay) the scenario's fault is injected; then the
 * run must end Succeeded and its ledger must pass {@link auditLedger}.
 * Scenarios run one after another (the machine is small).
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const selected = selectScenarios(options.scenarios);
  const outcomes: ScenarioOutcome[] = [];
  for (const scenario of selected) {
    if (options.signal?.aborted) break;
    const outcome = await runScenario(scenario, options);
    outcomes.push(outcome);
    options.onProgress?.(`${scenario.name}: ${outcome.passed ? 'passed' : `FAILED (${outcome.problems.join('; ')})`}`);
  }
  return { mode: options.mode, seed: options.seed, passed: outcomes.length === selected.length && outcomes.every((o) => o.passed), scenarios: outcomes, simulated: true };
}

/** The steps after whose ack the faults go in: one per equal slice of the run's middle. */
function faultSteps(steps: number, faults: number, random: Prng): number[] {
  const first = 2;
  const last = Math.max(first, steps - 3);
  const slice = (last - first + 1) / faults;
  return Array.from({ length: faults }, (_, i) => {
    const lo = first + Math.floor(i * slice);
    const hi = Math.max(lo, first + Math.floor((i + 1) * slice) - 1);
    return random.int(lo, hi);
  });
}

async function runScenario(scenario: ChaosScenario, options: ChaosOptions): Promise<ScenarioOutcome> {
  const settings = CHAOS_MODES[options.mode];
  const random = createPrng(options.seed, scenario.name);
  const started = Date.now();
  const faults: string[] = [];
  const problems: string[] = [];
  const dir = await mkdtemp(join(tmpdir(), `tandem-chaos-${scenario.name}-`));
  const trainedLog = join(dir, 'trained.jsonl');
  let redis: RestartableRedis | undefined;
  let deployment: ChaosDeployment | undefined;
  let runId: string | undefined;
  let phase = 'Pending';
  let audit: LedgerAudit | undefined;
  let restarts: Record<string, number> = {};
  let steps = 0;
  const keyPrefix = 'chaos';
  try {
    redis = await RestartableRedis.start();
    const start = { redisUrl: redis.url, keyPrefix, log: options.log, trainedLog };
    deployment = scenario.controlPlane === 'replicas' ? await ReplicaDeployment.start(start) : await InProcessDeployment.start(start);
    const spec = chaosRunSpec({ name: scenario.name, steps: settings.steps, faults: settings.faults, seed: options.seed });
    const id = await deployment.submit(spec);
    runId = id;
    const live = deployment;
    const liveRedis = redis;
    const pending = faultSteps(settings.steps, settings.faults, random);
    const targets: ChaosTargets = {
      processes: (role) => (live instanceof InProcessDeployment ? liveProcesses(live.plane, id, role) : []),
      restartRedis: (pauseMs) => liveRedis.restart(pauseMs),
      killLeader: async () => {
        if (!(live instanceof ReplicaDeployment)) throw new Error(`scenario ${scenario.name} kills the leader but runs an in-process control plane (set controlPlane: 'replicas')`);
        // A fresh standby only while more faults are to come: there is always one to take over next.
        const f = await live.killLeader(id, pending.length > 0);
        if (!f.runs.includes(id)) problems.push(`${f.successor} took over runs [${f.runs.join(', ')}], not ${id}`);
        return (
          `SIGKILL leader ${f.killed} (pid ${f.killedPid}, ${f.children} run processes) at step ${f.stepAtKill}; ` +
          `${f.successor} leading after ${f.leadingMs} ms (token ${f.token}), run resumed after ${f.resumedMs} ms`
        );
      },
    };
    const deadline = started + settings.runLimitMs;
    while (!options.signal?.aborted) {
      const view = await deployment.view(id);
      if (view) {
        phase = view.phase;
        steps = view.trainerStep;
        if (deployment instanceof ReplicaDeployment) deployment.noteStep(steps);
        if (TERMINAL.has(phase)) break;
        const next = pending[0];
        if (next !== undefined && steps >= next) {
          pending.shift();
          await sleep(random.int(0, 400), options.signal);
          const done = await scenario.inject(targets, random);
          faults.push(`after step ${next}: ${done}`);
          options.onProgress?.(`${scenario.name}: ${done} (step ${steps} of ${settings.steps})`);
        }
      }
      if (Date.now() > deadline) {
        phase = 'TimedOut';
        problems.push(`run did not end within ${settings.runLimitMs / 1000} s (step ${steps} of ${settings.steps})`);
        await deployment.cancel(id, 'chaos scenario timed out').catch(() => undefined);
        break;
      }
      await sleep(POLL_MS, options.signal);
    }
    if (options.signal?.aborted) {
      // Straight to the cleanup: a terminal's Ctrl-C may have stopped Redis too
      // (same process group), and the audit of an interrupted run means nothing.
      problems.push('interrupted');
      await withinMs(deployment.cancel(id, 'interrupted (Ctrl-C)'), 5000).catch(() => undefined);
    } else {
      if (phase !== 'Succeeded' && phase !== 'TimedOut') {
        const view = await deployment.view(id);
        problems.push(`run ended ${phase}${view?.message ? `: ${view.message}` : ''}`);
      }
      if (pending.length > 0) problems.push(`run ended before ${pending.length} fault(s) could be injected`);
      restarts = await deployment.restarts(id);
      audit = await auditRun(deployment.store, id, keyPrefix, trainedLog, settings.steps);
      problems.push(...audit.problems);
    }
  } catch (err) {
    problems.push(`harness error: ${(err as Error).message}`);
  } finally {
    const leaks = await deployment?.stop().catch((err: unknown) => {
      options.log.warn({ err, runId }, 'control plane stop failed');
      return [`control plane stop failed: ${(err as Error).message}`];
    });
    problems.push(...(leaks ?? []));
    await redis?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  const a = audit ?? { admitted: 0, trained: 0, droppedStale: 0, failed: 0, cancelled: 0, lost: 0, duplicated: 0, staleTrained: 0, stepsRecorded: 0 };
  const replicas = deployment instanceof ReplicaDeployment ? deployment : undefined;
  return {
    name: scenario.name,
    passed: problems.length === 0 && audit !== undefined && phase === 'Succeeded',
    phase,
    steps,
    admitted: a.admitted,
    trained: a.trained,
    droppedStale: a.droppedStale,
    failed: a.failed,
    cancelled: a.cancelled,
    lost: a.lost,
    duplicated: a.duplicated,
    staleTrained: a.staleTrained,
    stepsRecorded: a.stepsRecorded,
    faults,
    restarts,
    takeovers: replicas ? Math.max(0, replicas.replicas.takeovers) : 0,
    failovers: (replicas?.failovers ?? []).map((f) => ({
      atStep: f.stepAtKill,
      leadingMs: f.leadingMs,
      resumedMs: f.resumedMs,
      firstStepMs: f.firstStepMs ?? null,
    })),
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    problems,
  };
}

/** `promise`, or a rejection naming the limit once `ms` have passed. */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Reads the run's ledger from Redis and the trainer's record, and audits them. */
async function auditRun(store: RolloutStore, runId: string, keyPrefix: string, trainedLog: string, maxSteps: number): Promise<LedgerAudit> {
  const queue = store.forRun(runId);
  const [snapshot, groupStates, groupPrompts, promptSeq, trained] = await Promise.all([
    queue.snapshot(),
    queue.groupStates(),
    queue.groupPrompts(),
    store.redis.hget(runKeys(runId, keyPrefix).meta, 'promptSeq'),
    readTrainedRecord(trainedLog),
  ]);
  return auditLedger(
    { ledger: snapshot.ledger, groupStates, groupPrompts, promptsDrawn: Number(promptSeq ?? 0) },
    trained,
    { maxSteps, k: CHAOS_MAX_AGE_STEPS },
  );
}

const ROLE_OF: ReadonlyArray<[RegExp, ProcessRole]> = [
  [/^gen-/, 'generator'],
  [/^rollout-worker-/, 'rollout-worker'],
  [/^trainer$/, 'trainer'],
];

function liveProcesses(plane: ControlPlane, runId: string, role: ProcessRole): ChaosProcess[] {
  const out: ChaosProcess[] = [];
  for (const [name, p] of plane.local?.processes(runId) ?? new Map()) {
    const r = ROLE_OF.find(([re]) => re.test(name))?.[1];
    const pid = p.pid;
    if (r !== role || pid === undefined || !isAlive(pid)) continue;
    out.push({ name, pid, kill: () => p.kill('SIGKILL') });
  }
  return out;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
