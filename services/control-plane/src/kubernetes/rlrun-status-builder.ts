import { setCondition } from './conditions.js';
import { ConditionType, type Condition, type RLRunPhase, type RLRunProgress, type RLRunStatus, type RegisteredGenerator } from './rlrun-status.js';

/**
 * What the control plane knows about a run: the RunManager's view,
 * narrowed to what the RLRun status shows.
 */
export interface RunProgress {
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';
  message: string;
  trainerStep: number;
  maxSteps: number;
  policyVersion: number;
  minGeneratorVersion: number;
  maxGeneratorVersion: number;
  queueDepth: number;
  inFlight: number;
  meanAgeSteps?: number;
  maxAgeSteps?: number;
  /** Cumulative completion tokens trained (the reconciler turns it into a rate). */
  tokens?: number;
}

export const TERMINAL_RUN_PHASES: ReadonlySet<string> = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** Everything the status is computed from. */
export interface StatusInput {
  previous: RLRunStatus;
  generation: number | undefined;
  now: number;
  runId: string;
  progress: RunProgress | undefined;
  suspended: boolean;
  restarting: boolean;
  /** Why Tandem failed the run (deadline, restarts, rule, invalid spec), when it did. */
  failure?: { reason: string; message: string } | undefined;
  replicas: NonNullable<RLRunStatus['replicas']>;
  registered: RegisteredGenerator[];
  restarts: NonNullable<RLRunStatus['restarts']>;
  handledTrainerFailure?: string | undefined;
  tokensPerSecond?: number | undefined;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The RLRun status for this reconcile (pure: same input, same status). */
export function buildStatus(input: StatusInput): RLRunStatus {
  const { previous, progress, now } = input;
  const nowIso = iso(now);
  const terminal = progress !== undefined && TERMINAL_RUN_PHASES.has(progress.phase);
  let phase: RLRunPhase;
  if (input.failure && !terminal) phase = 'Failed';
  else if (terminal) phase = progress.phase;
  else if (input.suspended) phase = 'Suspended';
  else if (input.restarting) phase = 'Restarting';
  else phase = progress?.phase ?? 'Pending';
  const ended = phase === 'Succeeded' || phase === 'Failed' || phase === 'Cancelled';

  const r = input.replicas;
  const generatorsOk = r.generators.registered >= r.generators.desired && r.generators.ready >= r.generators.desired;
  const trainerOk = r.trainer.ready >= r.trainer.desired && r.trainer.desired > 0;
  const workersOk = r.rolloutWorkers.ready >= r.rolloutWorkers.desired;
  const inactiveReason = ended ? 'RunEnded' : input.suspended ? 'Suspended' : input.restarting ? 'Restarting' : undefined;

  let conditions: Condition[] = previous.conditions ?? [];
  const set = (type: string, status: boolean, reason: string, message: string): void => {
    conditions = setCondition(conditions, { type, status: status ? 'True' : 'False', reason, message }, nowIso, input.generation);
  };
  set(
    ConditionType.GeneratorsReady,
    !inactiveReason && generatorsOk,
    inactiveReason ?? (generatorsOk ? (r.generators.desired === 0 ? 'NoneDesired' : 'AllRegistered') : 'WaitingForGenerators'),
    `${r.generators.ready}/${r.generators.desired} generator pods ready, ${r.generators.registered} registered for weight sync`,
  );
  set(
    ConditionType.TrainerReady,
    !inactiveReason && trainerOk,
    inactiveReason ?? (trainerOk ? 'PodsReady' : 'WaitingForTrainer'),
    `${r.trainer.ready}/${r.trainer.desired} trainer pods ready`,
  );
  const running = phase === 'Running';
  set(ConditionType.Running, running, running ? 'Running' : phase, running ? `training step ${progress?.trainerStep ?? 0} of ${progress?.maxSteps ?? '?'}` : `run is ${phase}`);
  const suspended = phase === 'Suspended';
  set(ConditionType.Suspended, suspended, suspended ? 'SuspendedByUser' : 'NotSuspended', suspended ? 'spec.suspend is true: pods deleted; queue, ledger and checkpoint kept' : '');
  const restarting = phase === 'Restarting';
  const missing = [...(generatorsOk ? [] : ['generators']), ...(trainerOk ? [] : ['trainer']), ...(workersOk ? [] : ['rollout workers'])];
  const degraded = restarting || (running && missing.length > 0);
  set(
    ConditionType.Degraded,
    degraded,
    restarting ? 'Restarting' : degraded ? 'PodsNotReady' : 'AsExpected',
    restarting ? 'a failed role is being restarted' : degraded ? `not all pods ready: ${missing.join(', ')}` : '',
  );
  const succeeded = phase === 'Succeeded';
  set(ConditionType.Complete, succeeded, succeeded ? 'TrainedAllSteps' : ended ? phase : 'InProgress', succeeded ? (progress?.message ?? '') : '');
  const failedNow = phase === 'Failed';
  const failure = input.failure ?? { reason: previousFailureReason(previous) ?? 'RunFailed', message: progress?.message ?? '' };
  set(ConditionType.Failed, failedNow, failedNow ? failure.reason : 'NotFailed', failedNow ? failure.message : '');

  const progressStatus = progress ? progressOf(progress, previous.progress, nowIso, input.tokensPerSecond) : previous.progress;
  const active = !ended && !input.suspended;
  const status: RLRunStatus = {
    ...(input.generation !== undefined ? { observedGeneration: input.generation } : {}),
    phase,
    message: failedNow ? failure.message : (progress?.message ?? ''),
    runId: input.runId,
    conditions: conditions.sort((a, b) => ORDER.indexOf(a.type) - ORDER.indexOf(b.type)),
    replicas: input.replicas,
    ...(progressStatus ? { progress: progressStatus } : {}),
    restarts: input.restarts,
    ...(input.registered.length > 0 ? { registeredGenerators: input.registered } : {}),
    ...(input.handledTrainerFailure ? { handledTrainerFailure: input.handledTrainerFailure } : {}),
    // As for a Job, the clock of activeDeadlineSeconds restarts on resume.
    ...(active || (ended && previous.startTime) ? { startTime: previous.startTime ?? nowIso } : {}),
    ...(ended ? { completionTime: previous.completionTime ?? nowIso } : {}),
  };
  return status;
}

const ORDER: string[] = Object.values(ConditionType);

function previousFailureReason(previous: RLRunStatus): string | undefined {
  const c = previous.conditions?.find((x) => x.type === ConditionType.Failed && x.status === 'True');
  return c?.reason;
}

function progressOf(p: RunProgress, previous: RLRunProgress | undefined, nowIso: string, tokensPerSecond: number | undefined): RLRunProgress {
  const next: Omit<RLRunProgress, 'lastUpdateTime'> = {
    trainerStep: p.trainerStep,
    maxSteps: p.maxSteps,
    policyVersion: p.policyVersion,
    minGeneratorVersion: p.minGeneratorVersion,
    maxGeneratorVersion: p.maxGeneratorVersion,
    ...(p.meanAgeSteps !== undefined ? { meanAgeSteps: Math.round(p.meanAgeSteps * 100) / 100 } : {}),
    ...(p.maxAgeSteps !== undefined ? { maxAgeSteps: p.maxAgeSteps } : {}),
    queueDepth: p.queueDepth,
    inFlight: p.inFlight,
    ...(tokensPerSecond !== undefined ? { tokensPerSecond: Math.round(tokensPerSecond * 10) / 10 } : previous?.tokensPerSecond !== undefined ? { tokensPerSecond: previous.tokensPerSecond } : {}),
  };
  const { lastUpdateTime: _t, ...prevValues } = previous ?? ({} as RLRunProgress);
  const changed = canonical(prevValues) !== canonical(next);
  return { ...next, lastUpdateTime: changed || !previous ? nowIso : previous.lastUpdateTime };
}

/**
 * An RFC 7386 merge patch that turns `from` into `to` (null removes a
 * field; lists are replaced whole).
 */
export function mergePatchDiff(from: unknown, to: unknown): unknown {
  if (!isObj(from) || !isObj(to)) return to;
  const patch: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(from), ...Object.keys(to)])) {
    if (!(key in to) || to[key] === undefined) {
      if (from[key] !== undefined) patch[key] = null;
      continue;
    }
    if (canonical(from[key]) === canonical(to[key])) continue;
    patch[key] = isObj(from[key]) && isObj(to[key]) ? mergePatchDiff(from[key], to[key]) : to[key];
  }
  return patch;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** JSON with object keys sorted, so equal values compare equal whatever their key order. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, value: unknown) => (isObj(value) ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b))) : value));
}
