import { TandemError, type Logger } from '@tandem/common';
import { ControlPlane, ensureRedis, loadConfig, type RedisEndpoint, type SyncReport } from '@tandem/control-plane';
import { demoSpec, type DemoOptions } from './demo-spec.js';
import { GeneratorBusySampler } from './generator-busy.js';
import { ageStats } from './metric-values.js';
import { ProgressRenderer } from './progress.js';
import { idealSpeedup, percentile, type RunSummary } from './run-summary.js';

/** Options of `tandem demo`. */
export interface DemoCommandOptions extends DemoOptions {
  compareSync: boolean;
  redisUrl: string;
  httpPort: number;
  grpcPort: number;
}

/** The `--json` result of `tandem demo`. */
export type DemoResult = RunSummary & {
  sync?: RunSummary;
  speedup?: number;
  idealSpeedup?: number;
  speedupOverIdeal?: number;
};

const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);

/**
 * `tandem demo`: an embedded control plane (Redis started if none answers),
 * the demo run on simulated generators and trainer, live progress on
 * stderr, and a summary. With compareSync the same workload runs first with
 * k = 0 (synchronous RL) and the speedup is reported next to its ideal bound.
 * `signal` (Ctrl-C) stops everything that was started, Redis included.
 */
export async function runDemo(options: DemoCommandOptions, log: Logger, signal: AbortSignal): Promise<DemoResult> {
  let redis: RedisEndpoint | undefined;
  let plane: ControlPlane | undefined;
  try {
    redis = await ensureRedis(options.redisUrl, log);
    plane = await ControlPlane.create(
      loadConfig({
        TANDEM_REDIS_URL: redis.url,
        TANDEM_HTTP_PORT: String(options.httpPort),
        TANDEM_GRPC_PORT: String(options.grpcPort),
        TANDEM_LOG_LEVEL: log.level,
        TANDEM_GENERATOR_HEALTH_INTERVAL_MS: '1000',
        TANDEM_KEY_PREFIX: 'tandem',
      }),
      { log },
    );
    const addresses = await plane.start();
    process.stderr.write(
      `tandem demo: control plane at ${addresses.httpUrl} (gRPC ${addresses.grpcAddress}), Redis ${redis.url}${redis.embedded ? ' (embedded)' : ''}\n` +
        `simulated: ${options.generators} generators (7B-class, H100-like throughput model), simulated trainer; times scaled by ${options.timeScale}\n`,
    );
    let sync: RunSummary | undefined;
    if (options.compareSync) {
      sync = await runOnce(plane, { ...options, maxAgeSteps: 0 }, 'sync  k=0', signal);
    }
    const main = await runOnce(plane, options, `async k=${options.maxAgeSteps}`, signal);
    if (!sync) return main;
    const speedup = sync.wallSeconds / main.wallSeconds;
    const ideal = idealSpeedup(sync);
    return { ...main, sync, speedup, idealSpeedup: ideal, speedupOverIdeal: speedup / ideal };
  } finally {
    await plane?.stop().catch((err: unknown) => log.warn({ err }, 'control plane stop failed'));
    await redis?.stop();
  }
}

async function runOnce(plane: ControlPlane, options: DemoOptions, label: string, signal: AbortSignal): Promise<RunSummary> {
  const spec = demoSpec(options);
  const submitted = await plane.runs.submit({ spec });
  const runId = submitted.id;
  const started = Date.now();
  const busy = new GeneratorBusySampler();
  const progress = new ProgressRenderer(process.stderr, () => Date.now());
  let reports: SyncReport[] = [];
  let lastTokens = 0;
  let lastT = started;
  let lastWait = 0;
  let rate = 0;
  let trainerBusy: number | undefined;
  let view = submitted;
  const onAbort = (): void => {
    void plane.runs.cancel(runId, 'interrupted (Ctrl-C)').catch(() => undefined);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      view = await plane.runs.get(runId);
      const now = Date.now();
      const coordinator = plane.syncs.coordinator(runId);
      if (coordinator) reports = coordinator.reports;
      const gens = await plane.store.generators(runId).list();
      await busy.sample(new Map(gens.map((g) => [g.id, g.url])), now);
      const ages = await ageStats(plane.metrics, runId);
      const wait = plane.broker.trainerWaitSeconds(runId);
      const dt = (now - lastT) / 1000;
      if (dt >= 1) {
        rate = (view.status.ledger.tokensTrained - lastTokens) / dt;
        trainerBusy = view.status.trainerStep > 0 ? Math.max(0, Math.min(1, 1 - (wait - lastWait) / dt)) : undefined;
        lastTokens = view.status.ledger.tokensTrained;
        lastWait = wait;
        lastT = now;
      }
      const done = TERMINAL.has(view.status.phase);
      progress.render(
        {
          label,
          step: view.status.trainerStep,
          maxSteps: view.status.maxSteps,
          policyVersion: view.status.policyVersion,
          queueDepth: view.status.queueDepth,
          inFlight: view.status.inFlight,
          meanAge: ages.mean,
          maxAge: ages.max,
          dropped: view.status.ledger.droppedStale,
          generatorBusy: busy.busyRatio(),
          trainerBusy,
          tokensPerSecond: rate,
          generators: view.status.generators.ready + view.status.generators.syncing,
        },
        done,
      );
      if (done) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  const wallSeconds = (Date.now() - started) / 1000;
  if (view.status.phase !== 'Succeeded') {
    throw new TandemError('ABORTED', `run ${runId} ended ${view.status.phase}: ${view.status.message}`);
  }
  // The trainer prints its report as it exits, just after the last ack.
  let events = plane.local?.events(runId);
  for (let i = 0; i < 50 && !events?.trainerReport; i++) {
    await new Promise((r) => setTimeout(r, 100));
    events = plane.local?.events(runId);
  }
  const report = events?.trainerReport ?? {};
  const trainSeconds = Number(report.trainSeconds ?? 0);
  const waitSeconds = Number(report.waitSeconds ?? 0);
  const steps = view.status.trainerStep;
  const ages = await ageStats(plane.metrics, runId);
  const totals = reports.filter((r) => r.result !== 'failed').map((r) => r.phasesMs.total ?? 0);
  const l = view.status.ledger;
  return {
    runId,
    simulated: true,
    phase: view.status.phase,
    maxTrajectoryAgeSteps: options.maxAgeSteps,
    steps,
    groupsAdmitted: l.admitted,
    groupsTrained: l.trained,
    groupsDroppedStale: l.droppedStale,
    groupsFailed: l.failed,
    groupsCancelled: l.cancelled,
    tokensTrained: l.tokensTrained,
    tokensWasted: l.tokensWasted,
    maxAgeObserved: ages.max,
    meanAge: round(ages.mean, 3),
    trainerIdleRatio: round(Math.max(0, 1 - trainSeconds / wallSeconds), 3),
    generatorIdleRatio: round(1 - (busy.busyRatio() ?? 0), 3),
    wallSeconds: round(wallSeconds, 2),
    meanWaitSecondsPerStep: round(steps > 0 ? waitSeconds / steps : 0, 3),
    meanTrainSecondsPerStep: round(steps > 0 ? trainSeconds / steps : 0, 3),
    weightSyncs: totals.length,
    weightSyncP50Ms: round(percentile(totals, 50), 1),
    weightSyncP99Ms: round(percentile(totals, 99), 1),
    generators: new Set(reports.flatMap((r) => r.generators)).size,
    generatorRestarts: events?.restarts.generator ?? 0,
    trainerRestarts: events?.restarts.trainer ?? 0,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
