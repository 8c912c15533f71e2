import { randomBytes } from 'node:crypto';
import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import { isValidRunId, parseRunSpec, queueCapacityGroups, type RunSpec } from '@tandem/run-spec';
import type { JournalEntryType, QueueSnapshot, RolloutStore, RunJournalEntry } from '@tandem/rollout-queue';
import { Admitter } from './admitter.js';
import { checkDatasetPath, promptSourceFor, type DatasetFilePolicy } from './prompt-source.js';
import { RunRecordStore, TERMINAL_PHASES, type RunPhase, type RunRecord } from '@tandem/rollout-queue';
import type { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import type { DeclaredRun, RunDeclarations, RunRuntime } from '../runtime/run-runtime.js';

/** A run as the API shows it. */
export interface RunView {
  id: string;
  /** The namespace the run belongs to. */
  namespace: string;
  spec: RunSpec;
  status: RunStatusView;
}

/** Status of a run as the API shows it. */
export interface RunStatusView {
  phase: RunPhase;
  message: string;
  trainerStep: number;
  policyVersion: number;
  maxSteps: number;
  ledger: QueueSnapshot['ledger'];
  queueDepth: number;
  inFlight: number;
  generators: { desired: number; joining: number; ready: number; syncing: number; unhealthy: number };
  /** Oldest / newest version held by a serving generator (−1 when none serves). */
  minGeneratorVersion: number;
  maxGeneratorVersion: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string;
}

/** An ended run stays "active" for metrics this long: rollout workers flush their last counters after the end. */
const ACTIVE_AFTER_END_MS = 5 * 60_000;
/** Default of {@link RunManagerDeps.endedRunMetricsRetentionMs}. */
export const DEFAULT_ENDED_RUN_METRICS_RETENTION_MS = 15 * 60_000;

/** Collaborators of the {@link RunManager}. */
export interface RunManagerDeps {
  store: RolloutStore;
  metrics: ControlPlaneMetrics;
  clock: Clock;
  log: Logger;
  keyPrefix: string;
  /** Which files a submitted `jsonl` dataset may name (TANDEM_DATASET_DIRS); unchecked when omitted. */
  datasetFiles?: DatasetFilePolicy;
  /** Starts workloads; none means everything is external. */
  runtime?: RunRuntime;
  /**
   * How long an ended run's metric series stay exported (its final figures)
   * before they are removed; at least the five minutes its counters still
   * move. TANDEM_ENDED_RUN_METRICS_SECONDS. @default 900000
   */
  endedRunMetricsRetentionMs?: number;
  /** Called once when a run reaches a terminal phase (stop its weight sync). */
  onRunEnded?: (runId: string, phase: RunPhase, message: string) => Promise<void>;
  /**
   * Where runs are declared (kubernetes: RLRun objects). With it, submit
   * only declares; the leader's reconciler calls {@link RunManager.accept}.
   */
  declarations?: RunDeclarations;
  /**
   * The one namespace runs may belong to (kubernetes: the namespace the
   * RLRuns live in); any namespace when unset.
   */
  fixedNamespace?: string;
  /** Called after a run's workloads were stopped (its per-run Redis user is deleted then). */
  onWorkloadsStopped?: (runId: string) => Promise<void>;
}

/** The namespace of runs submitted without one. */
export const DEFAULT_NAMESPACE = 'default';

/** A submit request, as both API surfaces deliver it. */
export interface SubmitRunInput {
  spec: unknown;
  runId?: string;
  /** DNS-1123 label; {@link DEFAULT_NAMESPACE} (or the fixed namespace) when empty. */
  namespace?: string;
}

/**
 * Run lifecycle: validates and accepts runs, drives their admission, reports
 * status, cancels. Both API surfaces call this and nothing else, so they
 * answer the same for the same request.
 */
export class RunManager {
  private readonly deps: RunManagerDeps;
  private readonly records: RunRecordStore;
  private readonly admitters = new Map<string, Admitter>();
  /**
   * Runs that ended in this process, with when: "active" for metrics for
   * five minutes, their series exported until retention has passed.
   */
  private readonly endedAt = new Map<string, number>();
  private readonly log: Logger;

  constructor(deps: RunManagerDeps) {
    this.deps = deps;
    this.records = new RunRecordStore(deps.store.redis, deps.keyPrefix);
    this.log = deps.log.child({ component: 'run-manager' });
  }

  /** Validates, stores and starts a run (with declarations: validates and declares it). */
  async submit(input: SubmitRunInput): Promise<RunView> {
    const declarations = this.deps.declarations;
    const spec = declarations ? declarations.parseSpec(input.spec) : parseRunSpec(input.spec);
    if (input.runId !== undefined && input.runId !== '' && !isValidRunId(input.runId)) {
      throw TandemError.invalid('run', [
        { path: 'runId', message: 'must start with a letter, then lowercase letters, digits and -, at most 63 characters (a DNS-1035 label: it names Kubernetes Services)' },
      ]);
    }
    const namespace = this.namespaceOf(input.namespace);
    // Build the prompt source before accepting, so a bad dataset is a 400.
    if (spec.dataset.source === 'jsonl' && this.deps.datasetFiles) checkDatasetPath(spec.dataset.path, this.deps.datasetFiles);
    promptSourceFor(spec.dataset);
    const id = input.runId || `run-${randomBytes(4).toString('hex')}`;
    if (declarations) {
      await declarations.declare(id, spec);
      return this.get(id);
    }
    const view = await this.accept(id, spec, namespace);
    if (!view.created) throw new TandemError(ErrorCode.AlreadyExists, `run ${id} already exists`);
    return view.run;
  }

  /**
   * Stores and starts a run whose spec is valid; idempotent: an existing run
   * is returned as it is (and gets an admitter here if it is open and has
   * none — a new leader taking over). The kubernetes reconciler calls this.
   */
  async accept(id: string, spec: RunSpec, namespace?: string): Promise<{ run: RunView; created: boolean }> {
    // A new run (from the API or an RLRun) may read only the dataset files allowed.
    if (spec.dataset.source === 'jsonl' && this.deps.datasetFiles && !(await this.records.get(id))) checkDatasetPath(spec.dataset.path, this.deps.datasetFiles);
    const now = new Date(this.deps.clock.now()).toISOString();
    const record: RunRecord = { id, namespace: namespace ?? this.deps.fixedNamespace ?? DEFAULT_NAMESPACE, spec, phase: 'Pending', message: '', createdAt: now, updatedAt: now, finishedAt: '' };
    if (!(await this.records.create(record))) {
      const existing = await this.records.get(id);
      if (existing && !TERMINAL_PHASES.has(existing.phase)) {
        // A process that stored the record may have died before creating
        // the queue: creating it is idempotent, from the stored spec.
        await this.initQueue(existing);
        this.startAdmitter(existing);
      }
      return { run: await this.get(id), created: false };
    }
    await this.initQueue(record);
    this.log.info({ runId: id, maxSteps: spec.maxSteps, k: spec.async.maxTrajectoryAgeSteps }, 'run accepted');
    await this.journal(id, 'Normal', 'Accepted', `run accepted: ${spec.maxSteps} steps, k = ${spec.async.maxTrajectoryAgeSteps}, ${spec.algorithm.batchGroups} groups of ${spec.algorithm.groupSize} a step`);
    this.startAdmitter(record);
    await this.startWorkloads(record);
    return { run: await this.get(id), created: true };
  }

  /** Creates the run's rollout queue if it does not exist yet (never resets one). */
  private async initQueue(record: RunRecord): Promise<void> {
    const { spec } = record;
    await this.deps.store.forRun(record.id).init({
      maxTrajectoryAgeSteps: spec.async.maxTrajectoryAgeSteps,
      batchGroups: spec.algorithm.batchGroups,
      capacityGroups: queueCapacityGroups(spec),
      maxSteps: spec.maxSteps,
    });
  }

  /** The namespace of runs submitted without one. */
  get defaultNamespace(): string {
    return this.deps.fixedNamespace ?? DEFAULT_NAMESPACE;
  }

  /** The namespace a submit asks for, checked: a DNS-1123 label, and the fixed one when there is one. */
  private namespaceOf(requested: string | undefined): string {
    const fixed = this.deps.fixedNamespace;
    const ns = requested || fixed || DEFAULT_NAMESPACE;
    if (ns.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) {
      throw TandemError.invalid('run', [{ path: 'namespace', message: 'must be a DNS-1123 label: lowercase letters, digits and -, at most 63 characters' }]);
    }
    if (fixed !== undefined && ns !== fixed) {
      throw TandemError.invalid('run', [{ path: 'namespace', message: `this control plane serves namespace ${fixed} only` }]);
    }
    return ns;
  }

  /** Ends a run as failed: everything open is cancelled in the ledger. */
  async fail(id: string, message: string): Promise<RunView> {
    const record = await this.records.get(id);
    if (!record) throw new TandemError(ErrorCode.NotFound, `run ${id} not found`);
    if (TERMINAL_PHASES.has(record.phase)) return this.view(record);
    await this.deps.store.forRun(id).close('failed');
    const now = new Date(this.deps.clock.now()).toISOString();
    await this.records.update(id, { phase: 'Failed', message, updatedAt: now, finishedAt: now });
    this.log.error({ runId: id, reason: message }, 'run failed');
    await this.journal(id, 'Warning', 'Failed', message);
    return this.get(id);
  }

  /** Resizes the generator pool of a running run. */
  async scale(id: string, generators: number): Promise<RunView> {
    if (!Number.isInteger(generators) || generators < 0 || generators > 4096) {
      throw TandemError.invalid('scale request', [{ path: 'generators', message: 'must be an integer from 0 to 4096' }]);
    }
    const record = await this.records.get(id);
    if (!record && this.deps.declarations) {
      await this.deps.declarations.scale(id, generators);
      return this.get(id);
    }
    if (!record) throw new TandemError(ErrorCode.NotFound, `run ${id} not found`);
    if (TERMINAL_PHASES.has(record.phase)) throw new TandemError(ErrorCode.FailedPrecondition, `run ${id} has ended (${record.phase})`);
    await this.declarationOf(id, (d) => d.scale(id, generators));
    const spec = { ...record.spec, generator: { ...record.spec.generator, replicas: generators } };
    await this.records.updateSpec(id, spec);
    if (record.spec.simulation && this.deps.runtime) await this.deps.runtime.scaleGenerators(id, generators);
    this.log.info({ runId: id, generators }, 'generator pool resized');
    await this.journal(id, 'Normal', 'Scaled', `generator pool resized from ${record.spec.generator.replicas} to ${generators}`);
    return this.get(id);
  }

  private async startWorkloads(record: RunRecord): Promise<void> {
    if (!this.deps.runtime) return;
    try {
      await this.deps.runtime.startRun(record);
    } catch (err) {
      await this.fail(record.id, `workloads could not start: ${TandemError.from(err).message}`);
    }
  }

  async get(id: string): Promise<RunView> {
    const record = await this.records.get(id);
    if (record) return this.view(record);
    const declared = await this.deps.declarations?.get(id);
    if (declared) return declaredView(declared, this.deps.fixedNamespace ?? DEFAULT_NAMESPACE);
    throw new TandemError(ErrorCode.NotFound, `run ${id} not found`);
  }

  async list(): Promise<RunView[]> {
    const ids = await this.records.ids();
    const views = await Promise.all(ids.map((id) => this.records.get(id).then((r) => (r ? this.view(r) : undefined))));
    const accepted = views.filter((v): v is RunView => v !== undefined);
    if (!this.deps.declarations) return accepted;
    const known = new Set(ids);
    const pending = (await this.deps.declarations.list()).filter((d) => !known.has(d.id)).map((d) => declaredView(d, this.deps.fixedNamespace ?? DEFAULT_NAMESPACE));
    return [...accepted, ...pending];
  }

  /** Applies `change` to the run's declaration when there is one (runs from before declarations have none). */
  private async declarationOf(id: string, change: (d: RunDeclarations) => Promise<void>): Promise<void> {
    const declarations = this.deps.declarations;
    if (!declarations) return;
    try {
      await change(declarations);
    } catch (err) {
      if (TandemError.from(err).code !== ErrorCode.NotFound) throw err;
    }
  }

  /** Cancels a run; cancelling a finished run returns it unchanged. */
  async cancel(id: string, reason: string): Promise<RunView> {
    const record = await this.records.get(id);
    if (!record && this.deps.declarations) {
      await this.deps.declarations.cancel(id, reason || 'cancelled by request');
      return this.get(id);
    }
    if (!record) throw new TandemError(ErrorCode.NotFound, `run ${id} not found`);
    if (!TERMINAL_PHASES.has(record.phase)) await this.declarationOf(id, (d) => d.cancel(id, reason || 'cancelled by request'));
    if (TERMINAL_PHASES.has(record.phase)) return this.view(record);
    const cancelled = await this.deps.store.forRun(id).close('cancelled');
    const now = new Date(this.deps.clock.now()).toISOString();
    await this.records.update(id, { phase: 'Cancelled', message: reason || 'cancelled by request', updatedAt: now, finishedAt: now });
    this.log.info({ runId: id, groupsCancelled: cancelled, reason }, 'run cancelled');
    await this.journal(id, 'Normal', 'Cancelled', `${reason || 'cancelled by request'} (${cancelled} open groups cancelled)`);
    // The admitter sees the closed queue and ends, which stops the workloads.
    return this.get(id);
  }

  /**
   * Yields the run's status now and after every change (at most every
   * `minIntervalMs`), ending after a terminal phase.
   */
  async *watch(id: string, signal: AbortSignal, minIntervalMs = 200): AsyncGenerator<RunView> {
    const queue = this.deps.store.forRun(id);
    let last = '';
    while (!signal.aborted) {
      const changed = queue.waitForChange(5000, signal);
      const view = await this.get(id);
      const key = JSON.stringify(view.status);
      if (key !== last) {
        last = key;
        yield view;
      }
      if (TERMINAL_PHASES.has(view.status.phase)) return;
      await changed;
      await this.deps.clock.sleep(minIntervalMs, signal).catch(() => undefined);
    }
  }

  /** Starts admission for every open run (after a control-plane restart). */
  async resumeOpenRuns(): Promise<number> {
    let resumed = 0;
    for (const id of await this.records.ids()) {
      const record = await this.records.get(id);
      if (!record || TERMINAL_PHASES.has(record.phase)) continue;
      await this.initQueue(record);
      this.startAdmitter(record);
      await this.startWorkloads(record);
      await this.journal(id, 'Normal', 'Resumed', 'control plane (re)started: admission and workloads resumed');
      resumed++;
    }
    return resumed;
  }

  /** Stops every admitter (the runs stay open in Redis). */
  async stop(): Promise<void> {
    const running = [...this.admitters.keys(), ...this.endedAt.keys()];
    await Promise.all([...this.admitters.values()].map((a) => a.stop()));
    this.admitters.clear();
    // A replica that stops leading no longer follows these runs: its series
    // would stay frozen beside the new leader's. They go now, and come back
    // if this replica leads again.
    await Promise.all(running.map((id) => this.forgetRunMetrics(id).catch(() => undefined)));
  }

  /**
   * Runs whose metrics still move: those with an admitter in this process,
   * and those that ended in the last five minutes (rollout workers flush
   * their last counters after the end).
   */
  activeRunIds(): string[] {
    const now = this.deps.clock.now();
    const retention = Math.max(ACTIVE_AFTER_END_MS, this.deps.endedRunMetricsRetentionMs ?? DEFAULT_ENDED_RUN_METRICS_RETENTION_MS);
    const active = new Set(this.admitters.keys());
    for (const [id, t] of this.endedAt) {
      if (t >= now - ACTIVE_AFTER_END_MS) active.add(id);
      // Called on every scrape: also the moment to drop what is past retention.
      else if (t < now - retention) {
        this.forgetRunMetrics(id).catch((err: unknown) => this.log.warn({ err, runId: id }, 'removing an ended run’s metric series failed'));
      }
    }
    return [...active];
  }

  /** Whether this process still runs the run's admission (it has not ended here yet). */
  isAdmitting(id: string): boolean {
    return this.admitters.has(id);
  }

  /** Removes a run's metric series now (retention passed, or the run was deleted). */
  async forgetRunMetrics(id: string): Promise<void> {
    this.endedAt.delete(id);
    const removed = await this.deps.metrics.forgetRun(id);
    this.log.info({ runId: id, series: removed }, 'metric series of the ended run removed');
  }

  private startAdmitter(record: RunRecord): void {
    if (this.admitters.has(record.id)) return;
    const prompts = this.deps.store.promptQueue(record.id);
    const admitter = new Admitter({
      queue: this.deps.store.forRun(record.id),
      prompts,
      source: promptSourceFor(record.spec.dataset),
      metrics: this.deps.metrics,
      clock: this.deps.clock,
      log: this.deps.log.child({ component: 'admitter', runId: record.id }),
    });
    this.admitters.set(record.id, admitter);
    // This replica runs the run now (new, resumed, or re-created under the
    // same name): its series are exported again.
    this.deps.metrics.follow(record.id);
    admitter
      .start()
      .finally(() => prompts.close().catch((err: unknown) => this.log.warn({ err, runId: record.id }, 'closing the prompt queue failed')))
      .then(() => this.runEnded(record.id))
      .catch((err: unknown) => this.log.error({ err, runId: record.id }, 'admitter crashed'));
  }

  /** Admission ends only when the run does: stop its workloads and weight sync. */
  private async runEnded(id: string): Promise<void> {
    if (!this.admitters.has(id)) return; // stopped with the control plane, not ended
    this.admitters.delete(id);
    this.endedAt.set(id, this.deps.clock.now());
    const view = await this.get(id).catch(() => undefined);
    this.log.info({ runId: id, phase: view?.status.phase, ledger: view?.status.ledger }, 'run ended');
    if (view?.status.phase === 'Succeeded') {
      const l = view.status.ledger;
      await this.journal(id, 'Normal', 'Succeeded', `trained ${l.trained} groups in ${view.status.trainerStep} steps; ${l.droppedStale} dropped stale, ${l.failed} failed`);
    }
    await this.deps.onRunEnded?.(id, view?.status.phase ?? 'Succeeded', view?.status.message ?? '').catch((err: unknown) => this.log.warn({ err, runId: id }, 'weight sync stop failed'));
    await this.deps.runtime?.stopRun(id).catch((err: unknown) => this.log.warn({ err, runId: id }, 'stopping workloads failed'));
    await this.deps.onWorkloadsStopped?.(id).catch((err: unknown) => this.log.warn({ err, runId: id }, 'releasing run credentials failed'));
  }

  /** The run's journal, newest `limit` entries, oldest first (NOT_FOUND for an unknown run). */
  async events(id: string, limit = 50): Promise<RunJournalEntry[]> {
    await this.get(id);
    return this.deps.store.journal.list(id, limit);
  }

  private async journal(id: string, type: JournalEntryType, reason: string, message: string): Promise<void> {
    await this.deps.store.journal.record(id, type, reason, message);
  }

  private async view(record: RunRecord): Promise<RunView> {
    const queue = this.deps.store.forRun(record.id);
    const [snap, stats, gens] = await Promise.all([
      queue.snapshot(),
      this.deps.store.redis.hgetall(`${queue.keys.bullPrefix}:stats`),
      this.deps.store.generators(record.id).list(),
    ]);
    // Only the replica that runs the run exports its series (a standby's
    // reads must not: its copies would never be removed, and sums over
    // replicas would count the run twice); an ended run's series are final
    // once retention has passed, and reading the old run must not bring them back.
    if (this.admitters.has(record.id) || this.endedAt.has(record.id)) {
      this.deps.metrics.observeSnapshot(record.id, snap);
      this.deps.metrics.observeGenerationStats(record.id, stats);
    }
    const serving = gens.filter((g) => g.state === 'ready' || g.state === 'syncing').map((g) => g.policyVersion);
    let { phase, finishedAt, updatedAt, message } = record;
    if (!TERMINAL_PHASES.has(phase)) {
      const derived = derivePhase(snap);
      if (derived !== phase) {
        phase = derived;
        updatedAt = new Date(this.deps.clock.now()).toISOString();
        if (TERMINAL_PHASES.has(phase)) finishedAt = updatedAt;
        if (phase === 'Succeeded') message = `trained ${snap.trainerStep} steps`;
        await this.records.update(record.id, { phase, updatedAt, finishedAt, message });
      }
    }
    return {
      id: record.id,
      namespace: record.namespace ?? DEFAULT_NAMESPACE,
      spec: record.spec,
      status: {
        phase,
        message,
        trainerStep: snap.trainerStep,
        policyVersion: snap.policyVersion,
        maxSteps: snap.settings.maxSteps,
        ledger: snap.ledger,
        queueDepth: snap.queueDepth,
        inFlight: snap.inFlight,
        generators: {
          desired: record.spec.generator.replicas,
          joining: gens.filter((g) => g.state === 'joining').length,
          ready: gens.filter((g) => g.state === 'ready').length,
          syncing: gens.filter((g) => g.state === 'syncing').length,
          unhealthy: gens.filter((g) => g.state === 'unhealthy').length,
        },
        minGeneratorVersion: serving.length ? Math.min(...serving) : -1,
        maxGeneratorVersion: serving.length ? Math.max(...serving) : -1,
        createdAt: record.createdAt,
        updatedAt,
        finishedAt,
      },
    };
  }
}

/** A declared run the control plane has not accepted: its spec and declared state, counters at zero. */
function declaredView(d: DeclaredRun, namespace: string): RunView {
  const phase: RunPhase = d.cancelReason !== undefined ? 'Cancelled' : (d.phase ?? 'Pending');
  const ledger = { admitted: 0, trained: 0, droppedStale: 0, failed: 0, cancelled: 0, tokensTrained: 0, tokensWasted: 0 };
  return {
    id: d.id,
    namespace,
    spec: d.spec,
    status: {
      phase,
      message: d.cancelReason ?? d.message ?? '',
      trainerStep: 0,
      policyVersion: 0,
      maxSteps: d.spec.maxSteps,
      ledger,
      queueDepth: 0,
      inFlight: 0,
      generators: { desired: d.spec.generator.replicas, joining: 0, ready: 0, syncing: 0, unhealthy: 0 },
      minGeneratorVersion: -1,
      maxGeneratorVersion: -1,
      createdAt: d.createdAt,
      updatedAt: d.createdAt,
      finishedAt: '',
    },
  };
}

function derivePhase(snap: QueueSnapshot): RunPhase {
  switch (snap.state) {
    case 'complete':
      return 'Succeeded';
    case 'cancelled':
      return 'Cancelled';
    case 'failed':
      return 'Failed';
    case 'open':
      return snap.ledger.admitted > 0 ? 'Running' : 'Pending';
  }
}
