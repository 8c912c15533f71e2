import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueSnapshot } from '@tandem/rollout-queue';

/** Bucket bounds (steps) of tandem_trajectory_age_steps: exact for small k, coarser beyond. */
export const AGE_BUCKETS = [0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64];
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60];

/**
 * Every Prometheus metric of the control plane, labelled by run. Ledger
 * outcomes happen in several processes (a rollout worker drops a stale
 * group, the broker trains one), so the outcome counters are fed from the
 * run's ledger in Redis (the one source of truth), as deltas, when scraped.
 */
/** What every prom-client metric class has at run time (the registry's typings show less). */
interface LabelledMetric {
  labelNames?: string[];
  get(): Promise<{ values: Array<{ labels: Record<string, string | number | undefined> }> }>;
  remove(labels: Record<string, string>): void;
}

export class ControlPlaneMetrics {
  readonly registry = new Registry();

  readonly trajectoryAge = new Histogram({
    name: 'tandem_trajectory_age_steps',
    help: 'Age (trainer step minus oldest policy version) of prompt groups when served for training.',
    labelNames: ['run'],
    buckets: AGE_BUCKETS,
    registers: [this.registry],
  });
  readonly groups = new Counter({
    name: 'tandem_groups_total',
    help: 'Prompt groups by final ledger outcome (trained, dropped_stale, failed, cancelled).',
    labelNames: ['run', 'outcome'],
    registers: [this.registry],
  });
  readonly groupsAdmitted = new Counter({
    name: 'tandem_groups_admitted_total',
    help: 'Prompt groups admitted for a target step.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly tokensWasted = new Counter({
    name: 'tandem_tokens_wasted_total',
    help: 'Completion tokens generated and then dropped as stale.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly tokensTrained = new Counter({
    name: 'tandem_tokens_trained_total',
    help: 'Completion tokens in trained batches.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'tandem_rollout_queue_depth',
    help: 'Finished prompt groups waiting to be served to the trainer.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'tandem_groups_in_flight',
    help: 'Prompt groups admitted and still being generated.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly policyVersion = new Gauge({
    name: 'tandem_policy_version',
    help: 'Policy version the generators serve (published when a weight sync completes).',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly trainerStep = new Gauge({
    name: 'tandem_trainer_step',
    help: 'Optimizer steps acknowledged by the trainer.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly queueCapacity = new Gauge({
    name: 'tandem_queue_capacity_groups',
    help: 'Finished plus in-flight prompt groups a run may hold at once (async.queueCapacityGroups).',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly maxTrajectoryAge = new Gauge({
    name: 'tandem_max_trajectory_age_steps',
    help: 'The staleness bound k of a run (async.maxTrajectoryAgeSteps), for comparing ages against it.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly runOpen = new Gauge({
    name: 'tandem_run_open',
    help: '1 while a run is open (admitting, generating, training), 0 once it ended; alerts ignore the gauges ended runs leave.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly admissionWait = new Histogram({
    name: 'tandem_admission_wait_seconds',
    help: 'Time an admission waited for the staleness bound or queue capacity.',
    labelNames: ['run'],
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });
  readonly trainerWait = new Counter({
    name: 'tandem_trainer_wait_seconds_total',
    help: 'Time the trainer spent waiting in PullBatch for its batch to fill.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly batchesServed = new Counter({
    name: 'tandem_batches_served_total',
    help: 'Batches served to the trainer; reserved="true" counts re-serves of an un-acked batch.',
    labelNames: ['run', 'reserved'],
    registers: [this.registry],
  });

  readonly weightSyncSeconds = new Histogram({
    name: 'tandem_weight_sync_seconds',
    help: 'Duration of weight-sync phases (world_size, init, pause, start, update, finish, resume, total).',
    labelNames: ['run', 'phase'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly weightSyncs = new Counter({
    name: 'tandem_weight_syncs_total',
    help: 'Weight syncs by result: ok, partial (some generators cut off), failed.',
    labelNames: ['run', 'result'],
    registers: [this.registry],
  });
  readonly generatorPolicyVersion = new Gauge({
    name: 'tandem_generator_policy_version',
    help: 'Policy version each generator holds (-1 before its first sync).',
    labelNames: ['run', 'generator'],
    registers: [this.registry],
  });
  readonly generators = new Gauge({
    name: 'tandem_generators',
    help: 'Generators of a run by membership state (joining, ready, syncing, unhealthy).',
    labelNames: ['run', 'state'],
    registers: [this.registry],
  });
  readonly generationTokens = new Counter({
    name: 'tandem_generation_tokens_total',
    help: 'Completion tokens generated for a run, as counted by its rollout workers.',
    labelNames: ['run'],
    registers: [this.registry],
  });
  readonly generationRequests = new Counter({
    name: 'tandem_generation_requests_total',
    help: 'Completions requests sent to generators, by result code (ok, 429, timeout, malformed, error, cancelled).',
    labelNames: ['run', 'code'],
    registers: [this.registry],
  });
  readonly generatorBusyRatio = new Gauge({
    name: 'tandem_generator_busy_ratio',
    help: 'Fraction of the last interval each generator had requests running (from its own metrics).',
    labelNames: ['run', 'generator'],
    registers: [this.registry],
  });

  private readonly lastStats = new Map<string, Map<string, number>>();
  private readonly lastLedger = new Map<string, QueueSnapshot['ledger']>();
  /** Runs whose series were removed and that no one follows again: reading one later must not export it. */
  private readonly forgotten = new Set<string>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, prefix: 'tandem_control_plane_' });
      // prom-client exports three gauges named like counters, which
      // `promtool check metrics` rejects; the same figures stay, by type
      // (…_nodejs_active_handles{type} and the like).
      for (const kind of ['handles', 'requests', 'resources']) this.registry.removeSingleMetric(`tandem_control_plane_nodejs_active_${kind}_total`);
    }
  }

  /** Brings the gauges and ledger counters of one run up to date. */
  observeSnapshot(run: string, snap: QueueSnapshot): void {
    if (this.forgotten.has(run)) return;
    this.queueDepth.set({ run }, snap.queueDepth);
    this.inFlight.set({ run }, snap.inFlight);
    this.policyVersion.set({ run }, snap.policyVersion);
    this.trainerStep.set({ run }, snap.trainerStep);
    this.queueCapacity.set({ run }, snap.settings.capacityGroups);
    this.maxTrajectoryAge.set({ run }, snap.settings.maxTrajectoryAgeSteps);
    this.runOpen.set({ run }, snap.state === 'open' ? 1 : 0);
    const prev = this.lastLedger.get(run);
    const l = snap.ledger;
    const delta = (now: number, before: number | undefined): number => Math.max(0, now - (before ?? 0));
    const inc = (c: Counter, labels: Record<string, string>, by: number): void => {
      // Touch the series even at 0 so that every outcome is exported.
      c.inc(labels, by);
    };
    inc(this.groupsAdmitted, { run }, delta(l.admitted, prev?.admitted));
    inc(this.groups, { run, outcome: 'trained' }, delta(l.trained, prev?.trained));
    inc(this.groups, { run, outcome: 'dropped_stale' }, delta(l.droppedStale, prev?.droppedStale));
    inc(this.groups, { run, outcome: 'failed' }, delta(l.failed, prev?.failed));
    inc(this.groups, { run, outcome: 'cancelled' }, delta(l.cancelled, prev?.cancelled));
    inc(this.tokensWasted, { run }, delta(l.tokensWasted, prev?.tokensWasted));
    inc(this.tokensTrained, { run }, delta(l.tokensTrained, prev?.tokensTrained));
    this.lastLedger.set(run, { ...l });
  }

  /** Brings the generation counters of a run up to date from its `stats` hash. */
  observeGenerationStats(run: string, stats: Record<string, string>): void {
    if (this.forgotten.has(run)) return;
    const prev = this.lastStats.get(run) ?? new Map<string, number>();
    for (const [field, raw] of Object.entries(stats)) {
      const value = Number(raw);
      const delta = Math.max(0, value - (prev.get(field) ?? 0));
      prev.set(field, value);
      if (field === 'tokens') this.generationTokens.inc({ run }, delta);
      else if (field.startsWith('requests:')) this.generationRequests.inc({ run, code: field.slice('requests:'.length) }, delta);
    }
    this.lastStats.set(run, prev);
  }

  /** This process runs `run` (again): its series are exported (undoes {@link forgetRun}). */
  follow(run: string): void {
    this.forgotten.delete(run);
  }

  /**
   * Removes every series labelled with this run, whichever component set it
   * (queue, ledger, weight sync, generators), so that a long-lived control
   * plane does not export ended runs for ever. Later snapshots of the run
   * (a GET of the ended run) do not bring them back. Returns how many
   * series went.
   */
  async forgetRun(run: string): Promise<number> {
    this.forgotten.add(run);
    this.lastLedger.delete(run);
    this.lastStats.delete(run);
    let removed = 0;
    for (const m of this.registry.getMetricsAsArray()) {
      // prom-client removes a series only by its complete label set; the
      // label sets of this run are read back from the metric itself.
      const metric = m as unknown as LabelledMetric;
      const labelNames = metric.labelNames ?? [];
      if (!labelNames.includes('run')) continue;
      const seen = new Set<string>();
      for (const { labels } of (await metric.get()).values) {
        if (labels.run !== run) continue;
        const full = Object.fromEntries(labelNames.filter((n) => labels[n] !== undefined).map((n) => [n, String(labels[n])]));
        const key = JSON.stringify(full);
        if (seen.has(key)) continue;
        seen.add(key);
        metric.remove(full);
        removed++;
      }
    }
    return removed;
  }
}
