/** What the simulated trainer measured for one acked step. */
export interface StepStats {
  step: number;
  /** Clock ms from the first PullBatch of the step to the ready batch. */
  waitMs: number;
  /** Clock ms spent "training" (the cost model's time, already scaled). */
  trainMs: number;
  /** PullBatch calls it took (1 when the batch was ready at once). */
  pulls: number;
  groups: number;
  /** Completion tokens in the batch. */
  tokens: number;
  /** Age of each group (step − its minPolicyVersion), in batch order. */
  ages: number[];
  maxAge: number;
  meanAge: number;
  /** True when the batch had been served before (to a trainer that died). */
  reserved: boolean;
  /** Groups the control plane dropped as stale while assembling it. */
  droppedStale: number;
}

/** How a trainer's run ended. */
export type TrainerOutcome = 'finished' | 'run_ended' | 'stopped';

/**
 * The simulated trainer's summary, printed as one JSON line at exit. Times
 * are clock seconds (`timeScale` says how they relate to simulated time),
 * and everything is labelled simulated.
 */
export interface TrainerReport {
  simulated: true;
  runId: string;
  trainerId: string;
  outcome: TrainerOutcome;
  /** Phase and message from the control plane when it ended the run. */
  runEnded?: { phase: string; message: string };
  /** First step whose batch this process received (after resuming); its starting version when none. */
  firstStep: number;
  /** Policy version held at exit. */
  policyVersion: number;
  /** Steps acked by this process. */
  steps: number;
  groups: number;
  tokens: number;
  droppedStale: number;
  /** Batches that were served again after an earlier trainer died. */
  reservedBatches: number;
  waitSeconds: number;
  trainSeconds: number;
  /** wait / (wait + train): the share of the trainer's time spent idle. */
  idleRatio: number;
  /** Group ages over every trained group: histogram keyed by age in steps. */
  ages: { max: number; mean: number; histogram: Record<string, number> };
  /** Sessions re-established after the first attach. */
  reconnects: number;
  weightSyncs: number;
  weightSyncSeconds: number;
  timeScale: number;
}

/** Everything in the report that is not a sum over steps. */
export type ReportContext = Pick<
  TrainerReport,
  'runId' | 'trainerId' | 'outcome' | 'runEnded' | 'firstStep' | 'policyVersion' | 'reconnects' | 'weightSyncs' | 'weightSyncSeconds' | 'timeScale'
>;

/** Sums per-step stats into a report. */
export function buildTrainerReport(steps: readonly StepStats[], context: ReportContext): TrainerReport {
  let waitMs = 0;
  let trainMs = 0;
  let groups = 0;
  let tokens = 0;
  let droppedStale = 0;
  let reservedBatches = 0;
  let ageSum = 0;
  let ageCount = 0;
  let maxAge = 0;
  const histogram: Record<string, number> = {};
  for (const s of steps) {
    waitMs += s.waitMs;
    trainMs += s.trainMs;
    groups += s.groups;
    tokens += s.tokens;
    droppedStale += s.droppedStale;
    if (s.reserved) reservedBatches++;
    for (const age of s.ages) {
      histogram[String(age)] = (histogram[String(age)] ?? 0) + 1;
      ageSum += age;
      ageCount++;
      maxAge = Math.max(maxAge, age);
    }
  }
  const { runEnded, ...rest } = context;
  return {
    simulated: true,
    ...rest,
    ...(runEnded ? { runEnded } : {}),
    steps: steps.length,
    groups,
    tokens,
    droppedStale,
    reservedBatches,
    waitSeconds: waitMs / 1000,
    trainSeconds: trainMs / 1000,
    idleRatio: waitMs + trainMs > 0 ? waitMs / (waitMs + trainMs) : 0,
    ages: { max: maxAge, mean: ageCount > 0 ? ageSum / ageCount : 0, histogram },
  };
}
