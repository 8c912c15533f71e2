import { TandemError, type Clock, type Logger } from '@tandem/common';
import { failureActionFor, RLRunSpecSchema, type RLRunSpec, type RunRole } from '@tandem/run-spec';
import { zodViolations } from '@tandem/common';
import {
  checkpointPvc,
  childNames,
  generatorId,
  generatorOrdinal,
  generatorService,
  generatorStatefulSet,
  generatorUrl,
  runConfigMap,
  runCredentialsSecret,
  rolloutWorkerDeployment,
  trainerJob,
  trainerService,
  ANNOTATION_SPEC_HASH,
  LABEL_ROLE,
  LABEL_RUN,
  type RunIdentity,
  type WorkloadSettings,
} from './children.js';
import type { EventRecorder } from './event-recorder.js';
import { isNotFound, type KubeApi } from './kube-client.js';
import {
  CONFIGMAP,
  DEPLOYMENT,
  isPodReady,
  JOB,
  PVC,
  podRestartCount,
  RLRUN,
  SECRET,
  SERVICE,
  STATEFULSET,
  type KubeObject,
  type ResourceType,
} from './resources.js';
import type { RegisteredGenerator, RLRunStatus } from './rlrun-status.js';
import { buildStatus, mergePatchDiff, TERMINAL_RUN_PHASES, type RunProgress } from './rlrun-status-builder.js';

/** Finalizer that keeps an RLRun until its Redis state is removed. */
export const RLRUN_FINALIZER = 'tandem.dev/cleanup';
/** Annotation that cancels a run (`kubectl annotate rlrun x tandem.dev/cancel="why"`); the API's cancel sets it too. */
export const CANCEL_ANNOTATION = 'tandem.dev/cancel';
/** Field manager of the controller's server-side applies. */
export const FIELD_MANAGER = 'tandem-control-plane';

/** The control plane, as the reconciler sees it (all injected). */
export interface ControlPlaneHooks {
  /** Accepts a run into the control plane (Redis record, queue, admission); idempotent. */
  acceptRun(runId: string, spec: RLRunSpec): Promise<void>;
  /** The run as the control plane sees it; undefined when it was never accepted. */
  progress(runId: string): Promise<RunProgress | undefined>;
  cancelRun(runId: string, reason: string): Promise<void>;
  failRun(runId: string, message: string): Promise<void>;
  /** Removes the run's Redis state (finalizer); idempotent. */
  cleanupRun(runId: string): Promise<void>;
  /** (Re-)registers a generator; it joins the weight group at the next sync. */
  registerGenerator(runId: string, id: string, url: string): Promise<void>;
  /** Removes a generator (scaled down or suspended); NOT_FOUND is fine. */
  removeGenerator(runId: string, id: string): Promise<void>;
  /** The run's credentials (idempotent), when per-run credentials are on; undefined otherwise. */
  issueCredentials?(runId: string): Promise<{ token: string; redisUrl: string } | undefined>;
}

/** Read-only caches the reconciler looks things up in (informers). */
export interface ObjectCache {
  get(namespace: string, name: string): KubeObject | undefined;
  list(): KubeObject[];
}

/** Collaborators of the {@link RLRunReconciler}. */
export interface RLRunReconcilerDeps {
  api: KubeApi;
  namespace: string;
  settings: WorkloadSettings;
  hooks: ControlPlaneHooks;
  caches: { rlruns: ObjectCache; pods: ObjectCache; statefulsets: ObjectCache; deployments: ObjectCache; jobs: ObjectCache };
  events: EventRecorder;
  clock: Clock;
  log: Logger;
}

/** What a reconcile asks of the work queue. */
export interface ReconcileResult {
  /** Reconcile again after this long (a child is being deleted, a restart is under way). */
  requeueAfterMs?: number;
}

type RestartCounts = NonNullable<RLRunStatus['restarts']>;
const ROLE_KEY: Record<RunRole, keyof RestartCounts> = { generator: 'generator', trainer: 'trainer', rolloutWorker: 'rolloutWorker' };

/**
 * Turns one RLRun into its children and keeps its status current.
 * Level-triggered and idempotent: every reconcile reads the RLRun and its
 * children from the informers' caches, computes the desired objects whole,
 * applies only those whose spec-hash changed (server-side apply, so a
 * repeated apply is a no-op even without the memo), acts on failures once
 * (what was handled is recorded in the status before acting), and writes
 * the status with a merge patch only when it changed.
 */
export class RLRunReconciler {
  private readonly d: RLRunReconcilerDeps;
  /** Hash last applied per child, so an unchanged child costs no request. */
  private readonly applied = new Map<string, string>();
  /** Container restarts last seen per pod UID (first sight is not a failure). */
  private readonly seenRestarts = new Map<string, number>();
  private readonly tokenMemo = new Map<string, { tokens: number; at: number; rate?: number }>();
  /**
   * Read-your-writes: the RLRun as our last write returned it, until the
   * informer's cache moves past the version that write replaced. Without
   * it a reconcile that runs before the watch delivers our own status
   * write would act on the old status again (register a generator twice).
   */
  private readonly written = new Map<string, { baseRv: string | undefined; object: KubeObject }>();
  /**
   * Generators registered by this reconciler (one per leadership). A new
   * leader registers every ready generator again even when the status lists
   * it: the weight-sync coordinator and the trainer's session live in the
   * leader's process, so the transfer group must be formed anew there.
   */
  private readonly confirmed = new Set<string>();

  constructor(deps: RLRunReconcilerDeps) {
    this.d = deps;
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const { namespace: ns } = this.d;
    let run = this.d.caches.rlruns.get(ns, name);
    if (!run) {
      this.forget(name);
      return {};
    }
    const mine = this.written.get(name);
    if (mine && run.metadata.resourceVersion === mine.baseRv) run = mine.object;
    else this.written.delete(name);
    if (run.metadata.deletionTimestamp) return this.finalize(run);
    if (!(run.metadata.finalizers ?? []).includes(RLRUN_FINALIZER)) {
      const baseRv = run.metadata.resourceVersion;
      run = await this.d.api.mergePatch(RLRUN, ns, name, {
        metadata: { finalizers: [...(run.metadata.finalizers ?? []), RLRUN_FINALIZER], resourceVersion: baseRv },
      });
      this.written.set(name, { baseRv, object: run });
    }
    const previous = (run.status ?? {}) as RLRunStatus;
    const parsed = RLRunSpecSchema.safeParse(run.spec);
    if (!parsed.success) {
      const message = `invalid spec: ${zodViolations(parsed.error).map((v) => `spec.${v.path}: ${v.message}`).join('; ')}`;
      return this.rejectSpec(run, previous, message);
    }
    const spec = parsed.data;
    const id: RunIdentity = { name, namespace: ns, uid: run.metadata.uid as string };
    const endedBefore = previous.phase !== undefined && TERMINAL_RUN_PHASES.has(previous.phase) && previous.conditions?.find((c) => c.type === 'Failed')?.reason !== 'InvalidSpec';

    // 1. The control plane's side of the run.
    let progress = await this.d.hooks.progress(name);
    if (!progress && !endedBefore) {
      try {
        await this.d.hooks.acceptRun(name, spec);
      } catch (err) {
        const e = TandemError.from(err);
        if (e.code === 'INVALID_ARGUMENT') return this.rejectSpec(run, previous, e.message);
        throw err;
      }
      progress = await this.d.hooks.progress(name);
      if (!previous.runId) await this.d.events.record(run, 'Normal', 'Accepted', `run ${name} accepted by the control plane`);
    }
    const cancel = run.metadata.annotations?.[CANCEL_ANNOTATION];
    if (progress && cancel !== undefined && !TERMINAL_RUN_PHASES.has(progress.phase)) {
      await this.d.hooks.cancelRun(name, cancel || `cancelled with the ${CANCEL_ANNOTATION} annotation`);
      progress = await this.d.hooks.progress(name);
    }
    let failure: { reason: string; message: string } | undefined;
    const fail = async (reason: string, message: string): Promise<void> => {
      failure = { reason, message };
      await this.d.hooks.failRun(name, message);
      progress = await this.d.hooks.progress(name);
      await this.d.events.record(run as KubeObject, 'Warning', reason, message);
    };
    const isEnded = (): boolean => progress === undefined ? endedBefore : TERMINAL_RUN_PHASES.has(progress.phase);
    const suspended = spec.suspend && !isEnded();
    const now = this.d.clock.now();

    if (!isEnded() && !suspended && spec.activeDeadlineSeconds && previous.startTime) {
      const elapsedMs = now - Date.parse(previous.startTime);
      if (elapsedMs > spec.activeDeadlineSeconds * 1000) await fail('DeadlineExceeded', `run exceeded activeDeadlineSeconds (${spec.activeDeadlineSeconds} s)`);
    }

    // 2. Failures, each handled once.
    const restarts: RestartCounts = { generator: 0, trainer: 0, rolloutWorker: 0, run: 0, ...(previous.restarts ?? {}) };
    let handledTrainerFailure = previous.handledTrainerFailure;
    let registered = [...(previous.registeredGenerators ?? [])];
    const names = childNames(name);
    const pods = this.d.caches.pods.list().filter((p) => p.metadata.labels?.[LABEL_RUN] === name);
    const job = this.d.caches.jobs.get(ns, names.trainer);
    let restart: 'trainer' | 'run' | undefined;
    if (!isEnded() && !suspended) {
      const roleFailure = async (role: RunRole, what: string): Promise<void> => {
        const action = failureActionFor(spec, role);
        const max = spec.failurePolicy.maxRestarts;
        if (action === 'FailRun') return fail('FailurePolicy', `${role} failed (${what}); its failure policy is FailRun`);
        const key = action === 'RestartRun' ? 'run' : ROLE_KEY[role];
        restarts[key] += 1;
        if (restarts[key] > max) {
          return fail('RestartsExhausted', `${role} failed (${what}) and ${action === 'RestartRun' ? 'the run' : 'the role'} ran out of restarts (failurePolicy.maxRestarts = ${max})`);
        }
        await this.d.events.record(run as KubeObject, 'Warning', action === 'RestartRun' ? 'RestartingRun' : 'RoleRestarted', `${role} failed (${what}); ${action === 'RestartRun' ? `restarting the run (${restarts.run}/${max})` : `restart ${restarts[key]}/${max}`}`);
        if (action === 'RestartRun') restart = 'run';
        else if (role === 'trainer') restart = restart ?? 'trainer';
      };
      if (job && jobFailed(job) && job.metadata.uid !== handledTrainerFailure) {
        handledTrainerFailure = job.metadata.uid;
        await roleFailure('trainer', jobFailureMessage(job));
      }
      for (const role of ['generator', 'rollout-worker'] as const) {
        let crashes = 0;
        for (const pod of pods.filter((p) => p.metadata.labels?.[LABEL_ROLE] === role)) {
          const uid = pod.metadata.uid as string;
          const count = podRestartCount(pod);
          const seen = this.seenRestarts.get(uid);
          this.seenRestarts.set(uid, count);
          if (seen !== undefined && count > seen) crashes += count - seen;
        }
        if (crashes > 0 && !isEnded()) await roleFailure(role === 'generator' ? 'generator' : 'rolloutWorker', `${crashes} container restart(s)`);
      }
    }
    const ended = isEnded();
    const active = !ended && !suspended;
    const statusInput = (restarting: boolean): Parameters<typeof buildStatus>[0] => ({
      previous, generation: run?.metadata.generation, now, runId: name, progress, suspended, restarting, failure,
      replicas: this.replicas(spec, pods, registered, active), registered, restarts, handledTrainerFailure,
    });
    if (failure) {
      // Record why before anything else can fail: a retry would not know.
      await this.writeStatus(run, previous, statusInput(false));
      return {};
    }

    // 3. Children. A restart first records what it handled, then deletes.
    let requeueAfterMs: number | undefined;
    if (restart && active) {
      await this.writeStatus(run, previous, statusInput(true));
      await this.deleteChild(JOB, names.trainer, 'Foreground');
      if (restart === 'run') {
        await this.deleteChild(STATEFULSET, names.generators, 'Foreground');
        await this.deleteChild(DEPLOYMENT, names.rolloutWorkers, 'Foreground');
        registered = await this.unregisterAll(name, registered);
      }
      return { requeueAfterMs: 1000 };
    }
    await this.applyChild(SERVICE, generatorService(id));
    await this.applyChild(SERVICE, trainerService(id, this.d.settings));
    await this.applyChild(CONFIGMAP, runConfigMap(id, spec));
    if (this.d.settings.runCredentials) {
      const credentials = await this.d.hooks.issueCredentials?.(name);
      if (credentials) await this.applyChild(SECRET, runCredentialsSecret(id, credentials));
    }
    const pvc = checkpointPvc(id, spec, this.d.settings);
    if (pvc) await this.ensureCheckpointClaim(pvc);
    await this.applyChild(STATEFULSET, generatorStatefulSet(id, spec, this.d.settings, active));
    await this.applyChild(DEPLOYMENT, rolloutWorkerDeployment(id, spec, this.d.settings, active));
    if (!active) {
      // Deleting the Job is what stops the trainer (the checkpoint PVC is the RLRun's and stays).
      if (job && !(ended && jobSucceeded(job))) await this.deleteChild(JOB, names.trainer, 'Background');
    } else {
      const desired = trainerJob(id, spec, this.d.settings);
      const want = desired.metadata.annotations?.[ANNOTATION_SPEC_HASH];
      if (job?.metadata.deletionTimestamp) requeueAfterMs = 1000; // wait for the old Job to go
      else if (job && job.metadata.annotations?.[ANNOTATION_SPEC_HASH] !== want && !jobFailed(job)) {
        // A Job's pod template is immutable: a changed trainer spec means a new Job.
        await this.deleteChild(JOB, names.trainer, 'Foreground');
        await this.d.events.record(run, 'Normal', 'TrainerUpdated', 'trainer spec changed: replacing its Job (it resumes from the checkpoint)');
        requeueAfterMs = 1000;
      } else if (job && jobFailed(job)) {
        // Handled above (restart or fail); a failed Job left here is replaced.
        await this.deleteChild(JOB, names.trainer, 'Foreground');
        requeueAfterMs = 1000;
      } else if (!job) {
        this.applied.delete(`${JOB.plural}/${names.trainer}`);
        await this.applyChild(JOB, desired);
      }
    }

    // 4. Generators: a Ready pod with a new UID (replaced) or a restarted container re-registers.
    if (active) registered = await this.syncGenerators(run, id, spec, pods, registered);
    else if (registered.length > 0) registered = await this.unregisterAll(name, registered);

    // 5. Status.
    await this.writeStatus(run, previous, {
      previous, generation: run.metadata.generation, now, runId: name, progress, suspended, restarting: false, failure,
      replicas: this.replicas(spec, pods, registered, active), registered, restarts, handledTrainerFailure,
      tokensPerSecond: this.tokensPerSecond(name, progress, now),
    });
    return requeueAfterMs === undefined ? {} : { requeueAfterMs };
  }

  private async syncGenerators(run: KubeObject, id: RunIdentity, spec: RLRunSpec, pods: KubeObject[], current: RegisteredGenerator[]): Promise<RegisteredGenerator[]> {
    const byId = new Map(current.map((g) => [g.id, g]));
    const replicas = spec.generator.replicas;
    for (const pod of pods) {
      if (pod.metadata.labels?.[LABEL_ROLE] !== 'generator' || !isPodReady(pod)) continue;
      const ordinal = generatorOrdinal(id.name, pod.metadata.name as string);
      if (ordinal === undefined || ordinal >= replicas) continue;
      const gid = generatorId(ordinal);
      const restartCount = podRestartCount(pod);
      const old = byId.get(gid);
      const key = `${id.name}/${gid}/${pod.metadata.uid}/${restartCount}`;
      if (old && old.podUID === pod.metadata.uid && (old.restartCount ?? 0) === restartCount && this.confirmed.has(key)) continue;
      const url = generatorUrl(id, ordinal);
      await this.d.hooks.registerGenerator(id.name, gid, url);
      this.confirmed.add(key);
      if (old && old.podUID === pod.metadata.uid && (old.restartCount ?? 0) === restartCount) continue; // same pod, new leader: no event
      byId.set(gid, { id: gid, podUID: pod.metadata.uid as string, url, restartCount });
      await this.d.events.record(run, 'Normal', old ? 'GeneratorRejoined' : 'GeneratorRegistered', `${gid} (${pod.metadata.name}) registered at ${url}; it joins the weight group at the next sync`);
    }
    for (const [gid, g] of [...byId]) {
      const ordinal = Number(gid.split('-')[1]);
      if (ordinal < replicas) continue;
      await this.d.hooks.removeGenerator(id.name, gid).catch((err: unknown) => this.d.log.debug({ err, gid }, 'generator already gone'));
      byId.delete(gid);
      await this.d.events.record(run, 'Normal', 'GeneratorRemoved', `${gid} removed (${g.url}): scaled down`);
    }
    return [...byId.values()].sort((a, b) => Number(a.id.split('-')[1]) - Number(b.id.split('-')[1]));
  }

  private async unregisterAll(runId: string, registered: RegisteredGenerator[]): Promise<RegisteredGenerator[]> {
    for (const g of registered) await this.d.hooks.removeGenerator(runId, g.id).catch(() => undefined);
    return [];
  }

  private replicas(spec: RLRunSpec, pods: KubeObject[], registered: RegisteredGenerator[], active: boolean): NonNullable<RLRunStatus['replicas']> {
    const ready = (role: string): number => pods.filter((p) => p.metadata.labels?.[LABEL_ROLE] === role && isPodReady(p)).length;
    return {
      generators: { desired: active ? spec.generator.replicas : 0, ready: ready('generator'), registered: registered.length },
      trainer: { desired: active ? spec.trainer.numNodes : 0, ready: ready('trainer') },
      rolloutWorkers: { desired: active ? spec.rolloutWorkers.replicas : 0, ready: ready('rollout-worker') },
    };
  }

  private tokensPerSecond(runId: string, progress: RunProgress | undefined, now: number): number | undefined {
    if (progress?.tokens === undefined) return undefined;
    const prev = this.tokenMemo.get(runId);
    if (!prev || progress.tokens < prev.tokens) {
      this.tokenMemo.set(runId, { tokens: progress.tokens, at: now });
      return undefined;
    }
    if (now - prev.at < 1000) return prev.rate;
    const rate = ((progress.tokens - prev.tokens) * 1000) / (now - prev.at);
    this.tokenMemo.set(runId, { tokens: progress.tokens, at: now, rate });
    return rate;
  }

  private async writeStatus(run: KubeObject, previous: RLRunStatus, input: Parameters<typeof buildStatus>[0]): Promise<void> {
    const next = buildStatus(input);
    const patch = mergePatchDiff(previous, next) as Record<string, unknown>;
    if (Object.keys(patch).length === 0) return;
    const updated = await this.d.api.mergePatch(RLRUN, this.d.namespace, run.metadata.name as string, { status: patch }, { subresource: 'status' });
    this.written.set(run.metadata.name as string, { baseRv: run.metadata.resourceVersion, object: updated });
    if (previous.phase !== next.phase) {
      const warn = next.phase === 'Failed' || next.phase === 'Restarting';
      await this.d.events.record(run, warn ? 'Warning' : 'Normal', `Run${next.phase}`, `phase ${previous.phase ?? '(none)'} → ${next.phase}${next.message ? `: ${next.message}` : ''}`);
    }
  }

  private async rejectSpec(run: KubeObject, previous: RLRunStatus, message: string): Promise<ReconcileResult> {
    const failure = { reason: 'InvalidSpec', message };
    const already = previous.message === message && previous.phase === 'Failed';
    const empty = { desired: 0, ready: 0 };
    await this.writeStatus(run, previous, {
      previous, generation: run.metadata.generation, now: this.d.clock.now(), runId: run.metadata.name as string, progress: undefined,
      suspended: false, restarting: false, failure,
      replicas: { generators: { ...empty, registered: 0 }, trainer: empty, rolloutWorkers: empty },
      registered: [], restarts: previous.restarts ?? { generator: 0, trainer: 0, rolloutWorker: 0, run: 0 },
    });
    if (!already) await this.d.events.record(run, 'Warning', 'InvalidSpec', message);
    return {};
  }

  private async finalize(run: KubeObject): Promise<ReconcileResult> {
    const name = run.metadata.name as string;
    if (!(run.metadata.finalizers ?? []).includes(RLRUN_FINALIZER)) return {};
    // Stop the pods first, so no rollout worker or trainer writes to Redis
    // while (or after) its state is removed; the garbage collector would
    // only delete them after the finalizer is gone.
    const names = childNames(name);
    const workloads = [[STATEFULSET, names.generators, this.d.caches.statefulsets], [DEPLOYMENT, names.rolloutWorkers, this.d.caches.deployments], [JOB, names.trainer, this.d.caches.jobs]] as const;
    let waiting = false;
    for (const [type, child, cache] of workloads) {
      const cached = cache.get(this.d.namespace, child);
      if (!cached) continue;
      waiting = true;
      if (!cached.metadata.deletionTimestamp) await this.deleteChild(type, child, 'Foreground');
    }
    if (waiting) return { requeueAfterMs: 1000 };
    await this.d.hooks.cleanupRun(name);
    await this.d.events.record(run, 'Normal', 'CleanedUp', `removed the run's state from Redis; children go with the RLRun (ownerReferences)`);
    await this.d.api.mergePatch(RLRUN, this.d.namespace, name, {
      metadata: { finalizers: (run.metadata.finalizers ?? []).filter((f) => f !== RLRUN_FINALIZER), resourceVersion: run.metadata.resourceVersion },
    });
    this.forget(name);
    return {};
  }

  private forget(name: string): void {
    for (const key of [...this.applied.keys()]) if (key.split('/')[1]?.startsWith(`${name}-`)) this.applied.delete(key);
    this.tokenMemo.delete(name);
    this.written.delete(name);
  }

  /**
   * Creates the checkpoint PVC once. A claim's access modes, storage class
   * and size are fixed after creation (the apiserver refuses most changes
   * with 422, shrinking always), so a later spec change must not be applied
   * to it, or every reconcile of the run would fail there; the claim keeps
   * what it was created with.
   */
  private async ensureCheckpointClaim(desired: KubeObject): Promise<void> {
    const name = desired.metadata.name as string;
    const key = `${PVC.plural}/${name}`;
    const hash = desired.metadata.annotations?.[ANNOTATION_SPEC_HASH] ?? '';
    if (this.applied.has(key)) return;
    const existing = await this.d.api.get(PVC, this.d.namespace, name);
    if (!existing) await this.d.api.apply(PVC, this.d.namespace, desired, { fieldManager: FIELD_MANAGER, force: true });
    this.applied.set(key, existing?.metadata.annotations?.[ANNOTATION_SPEC_HASH] ?? hash);
  }

  private async applyChild(type: ResourceType, desired: KubeObject): Promise<void> {
    const key = `${type.plural}/${desired.metadata.name}`;
    const hash = desired.metadata.annotations?.[ANNOTATION_SPEC_HASH] ?? '';
    const cache = type === STATEFULSET ? this.d.caches.statefulsets : type === DEPLOYMENT ? this.d.caches.deployments : type === JOB ? this.d.caches.jobs : undefined;
    const cached = cache?.get(this.d.namespace, desired.metadata.name as string);
    if (cached && cached.metadata.annotations?.[ANNOTATION_SPEC_HASH] === hash) return;
    if (!cache && this.applied.get(key) === hash) return;
    await this.d.api.apply(type, this.d.namespace, desired, { fieldManager: FIELD_MANAGER, force: true });
    this.applied.set(key, hash);
  }

  private async deleteChild(type: ResourceType, name: string, propagationPolicy: 'Background' | 'Foreground'): Promise<void> {
    this.applied.delete(`${type.plural}/${name}`);
    try {
      await this.d.api.delete(type, this.d.namespace, name, { propagationPolicy });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

type JobCondition = { type: string; status: string; reason?: string; message?: string };

function jobConditions(job: KubeObject): JobCondition[] {
  return ((job.status as { conditions?: JobCondition[] } | undefined)?.conditions ?? []);
}

function jobFailed(job: KubeObject): boolean {
  return jobConditions(job).some((c) => c.type === 'Failed' && c.status === 'True');
}

function jobSucceeded(job: KubeObject): boolean {
  return jobConditions(job).some((c) => c.type === 'Complete' && c.status === 'True');
}

function jobFailureMessage(job: KubeObject): string {
  const c = jobConditions(job).find((x) => x.type === 'Failed' && x.status === 'True');
  return `trainer Job ${job.metadata.name} failed${c?.reason ? `: ${c.reason}` : ''}${c?.message ? ` (${c.message})` : ''}`;
}
