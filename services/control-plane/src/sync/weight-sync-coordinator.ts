import { randomBytes } from 'node:crypto';
import { TandemError, type Clock, type Logger } from '@tandem/common';
import { ControlMessage, type WeightsSent } from '@tandem/protocol';
import type { GeneratorRecord, GeneratorRegistry, RolloutQueue } from '@tandem/rollout-queue';
import type { TrainerSessions } from '../broker/trainer-sessions.js';
import type { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import { splitUpdateInfo, type PackingPlacement, type UpdateInfo, type VllmAdmin } from './vllm-admin-client.js';

/** Settings of one run's coordinator. */
export interface WeightSyncSettings {
  /** Deadline of one whole sync. */
  timeoutMs: number;
  /** vLLM pause mode "keep" (in-flight requests survive the update) vs "wait" (drain). */
  inFlightWeightUpdates: boolean;
  /** Port of the transfer group's rendezvous on the trainer (rank 0). */
  transferPort: number;
  /** Health-check period of generators. */
  healthIntervalMs: number;
  /** Consecutive failed health checks that take a generator out of the group. */
  unhealthyAfterFailures: number;
}

/** Collaborators of a {@link WeightSyncCoordinator}. */
export interface WeightSyncDeps {
  runId: string;
  registry: GeneratorRegistry;
  queue: RolloutQueue;
  sessions: TrainerSessions;
  metrics: ControlPlaneMetrics;
  clock: Clock;
  log: Logger;
  admin: (url: string) => VllmAdmin;
  /** Records an entry in the run's journal (cut-offs, failed syncs, rejoins). */
  journal?: (type: 'Normal' | 'Warning', reason: string, message: string) => Promise<void>;
}

/** Result of one sync, for logs, metrics and tests. */
export interface SyncReport {
  syncId: string;
  policyVersion: number;
  generators: string[];
  cutOff: Array<{ id: string; reason: string }>;
  groupReformed: boolean;
  phasesMs: Record<string, number>;
  result: 'ok' | 'partial' | 'failed';
}

/** What a simulated trainer (which sends no layout) syncs with: nothing to receive, packed as real trainers are. */
const EMPTY_UPDATE_INFO: UpdateInfo = { names: [], dtype_names: [], shapes: [], packed: true };

/**
 * Share of a sync's deadline kept for finish and resume. The transfer
 * (group, pause, start, update and the broadcast) must end before it, so
 * that a generator hanging in the transfer is cut off while the others
 * still have time to finish and resume; without the reserve they would get
 * the ~1 ms left at the deadline and be cut off with it.
 */
const COMPLETION_RESERVE = 0.25;

/** Timeout of one health check; rounds do not overlap. */
const HEALTH_TIMEOUT_MS = 2000;

/**
 * A generator cut off from a sync rejoins only after a cool-down that
 * doubles with each cut-off (capped): one that hangs every update would
 * otherwise rejoin at once and stall every sync until its deadline.
 */
const REJOIN_BASE_MS = 5000;
const REJOIN_MAX_MS = 300_000;

/**
 * Moves each new policy version from the trainer to every generator of one
 * run, one sync at a time, every call with a deadline:
 *
 *   (re-form group) → pause → start_weight_update → update_weights on the
 *   generators while the trainer broadcasts → finish_weight_update → resume
 *   → publish the version (rollout workers stamp new requests with it).
 *
 * A generator that misses a deadline or fails a call is cut off (unhealthy)
 * and the sync completes for the rest; the group is re-formed without it at
 * the next sync. New or recovered generators are `joining` and receive a
 * full sync before they serve. Versions reported faster than syncs finish
 * are coalesced to the newest.
 */
export class WeightSyncCoordinator {
  readonly reports: SyncReport[] = [];
  private readonly deps: WeightSyncDeps;
  private readonly settings: WeightSyncSettings;
  private readonly log: Logger;
  private wantedVersion = -1;
  private updateInfo: UpdateInfo = EMPTY_UPDATE_INFO;
  /** Where each generator of the current group takes the packing (learnt when it joined). */
  private readonly placements = new Map<string, PackingPlacement>();
  /** The packing the current group was formed with (init-placed packing cannot change without re-forming). */
  private groupPacking = '';
  private groupKey = '';
  private groupId = '';
  /** The session's layout last taken (or refused), so a malformed one is not re-read every round. */
  private sessionLayoutTaken: string | undefined;
  /** Whether the wait for a real trainer's weight layout was logged (once per coordinator). */
  private layoutWaitLogged = false;
  /** World size of the current transfer group (trainer + every generator rank). */
  private groupWorldSize = 1;
  private kick: (() => void) | undefined;
  private stopped = false;
  private loopDone: Promise<void> | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private readonly healthFailures = new Map<string, number>();
  private readonly cutOffs = new Map<string, { count: number; notBeforeMs: number }>();
  private healthRound: Promise<void> | undefined;
  /** Last load sample per generator, for tandem_generator_busy_ratio. */
  private readonly loadSamples = new Map<string, { t: number; busySeconds?: number; busyEwma: number }>();
  private readonly pendingSends = new Map<string, (r: WeightsSent) => void>();
  /** The trainer (trainerId) each pending SendWeights went to, and the version asked for. */
  private readonly sendTargets = new Map<string, { trainerId: string; version: number }>();

  constructor(deps: WeightSyncDeps, settings: WeightSyncSettings) {
    this.deps = deps;
    this.settings = settings;
    this.log = deps.log.child({ component: 'weight-sync', runId: deps.runId });
  }

  start(): void {
    this.loopDone ??= this.loop();
    this.healthTimer ??= setInterval(() => {
      if (this.healthRound) return; // the previous round is still running
      this.healthRound = this.checkHealth()
        .catch((err: unknown) => this.log.warn({ err }, 'health check round failed'))
        .finally(() => {
          this.healthRound = undefined;
        });
    }, this.settings.healthIntervalMs);
    this.healthTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.kick?.();
    await this.loopDone;
  }

  /** The trainer holds weights for `version` (and, for real models, their layout). */
  weightsReady(version: number, updateInfoJson: string): void {
    if (updateInfoJson) this.takeLayout(updateInfoJson);
    if (version > this.wantedVersion) this.wantedVersion = version;
    this.kick?.();
  }

  /** Takes the trainer's weight layout when it is well-formed; anything else is logged and ignored. */
  private takeLayout(updateInfoJson: string): void {
    let info: unknown;
    try {
      info = JSON.parse(updateInfoJson);
    } catch {
      this.log.warn('trainer sent update_info_json that is not JSON; ignoring it');
      return;
    }
    const i = info as Partial<UpdateInfo> | null;
    const lists = i !== null && typeof i === 'object' && Array.isArray(i.names) && Array.isArray(i.dtype_names) && Array.isArray(i.shapes);
    if (!lists || i.names?.length !== i.dtype_names?.length || i.names?.length !== i.shapes?.length) {
      this.log.warn('trainer sent update_info_json without names, dtype_names and shapes lists of one length; ignoring it');
      return;
    }
    this.updateInfo = i as UpdateInfo;
  }

  /** The trainer answered a SendWeights command. */
  weightsSent(result: WeightsSent): void {
    this.pendingSends.get(result.syncId)?.(result);
  }

  /** A generator was added or came back: it joins at the next sync boundary. */
  membershipChanged(): void {
    this.kick?.();
  }

  /**
   * A trainer (re-)attached: a new process has no transfer group, so the
   * next sync re-forms it (with a new group_id the trainer will join).
   */
  trainerAttached(): void {
    // A broadcast asked of a trainer process that has been replaced (it
    // crashed and was restarted) can never be answered: fail it now rather
    // than hold the generators paused until its deadline. The same process
    // re-attaching may still answer on its new stream, so it is left alone.
    const current = this.deps.sessions.get(this.deps.runId)?.trainerId;
    for (const [syncId, { trainerId, version }] of [...this.sendTargets]) {
      if (trainerId === current) continue;
      this.log.warn({ syncId, trainerId, replacedBy: current }, 'trainer replaced during a weight broadcast; the broadcast failed');
      this.pendingSends.get(syncId)?.({ policyVersion: version, ok: false, error: `trainer ${trainerId} was replaced by ${current ?? 'another trainer'} before it answered`, seconds: 0, syncId });
    }
    this.groupKey = '';
    this.kick?.();
  }

  /**
   * A generator (re-)registered: a new process, so its cut-off history is
   * forgotten, and the group is re-formed at the next sync even when it
   * came back under the same id and URL (a new process holds no transfer
   * engine; keeping the group would fail that sync for everyone).
   */
  generatorRegistered(id: string): void {
    this.cutOffs.delete(id);
    this.healthFailures.delete(id);
    this.groupKey = '';
    this.kick?.();
  }

  private async loop(): Promise<void> {
    let publishedVersion = -1;
    while (!this.stopped) {
      const woken = new Promise<void>((resolve) => {
        this.kick = resolve;
        setTimeout(resolve, 1000).unref();
      });
      try {
        const snap = await this.deps.queue.snapshot();
        if (snap.state !== 'open') {
          this.log.info({ state: snap.state }, 'run ended; weight sync stops');
          break;
        }
        const members = await this.deps.registry.list();
        const live = members.filter((g) => g.state !== 'unhealthy');
        const anyReady = live.some((g) => g.state === 'ready');
        const joiners = live.some((g) => g.state === 'joining');
        const trainer = this.deps.sessions.get(this.deps.runId);
        const trainerVersion = Math.max(this.wantedVersion, trainer?.weightsReadyVersion ?? -1);
        // Sync when the trainer is ahead of what generators serve, or when
        // joiners wait and nobody serves (else the run could never proceed).
        // Redis is the truth: a publish it lost (a restart within its AOF
        // fsync window) must be made again, or admission, which waits on the
        // published version, would wait for ever (k = 0 runs at once).
        publishedVersion = Math.min(publishedVersion, snap.policyVersion);
        const behind = trainerVersion > publishedVersion && live.length > 0;
        // A real trainer's broadcast follows its layout (names, dtypes,
        // shapes), which generators must be given in /update_weights; a sync
        // before the trainer has sent one would have vLLM receive nothing
        // while the trainer broadcasts. Simulated trainers send no layout.
        // A trainer that attached before this coordinator existed (no
        // generator had registered yet) sent its layout then: its session kept it.
        if (this.updateInfo.names.length === 0 && trainer?.updateInfoJson && trainer.updateInfoJson !== this.sessionLayoutTaken) {
          this.sessionLayoutTaken = trainer.updateInfoJson;
          this.takeLayout(trainer.updateInfoJson);
        }
        const layoutKnown = this.updateInfo.names.length > 0 || trainer?.simulated === true;
        if (trainer && !layoutKnown && !this.layoutWaitLogged) {
          this.layoutWaitLogged = true;
          this.log.warn({ trainerId: trainer.trainerId }, 'waiting for the trainer to send its weight layout (WeightsReady.update_info_json) before syncing');
        }
        if (trainer && layoutKnown && trainerVersion >= 0 && (behind || (joiners && !anyReady))) {
          const report = await this.sync(trainerVersion, live);
          if (report.result !== 'failed') publishedVersion = Math.max(publishedVersion, report.policyVersion);
        }
      } catch (err) {
        this.log.error({ err }, 'weight sync round failed');
      }
      await woken;
    }
  }

  /** Runs one sync of `version` to `members` (exported behaviour; used by tests through weightsReady). */
  private async sync(version: number, members: GeneratorRecord[]): Promise<SyncReport> {
    const { clock, metrics, registry, runId } = this.deps;
    const run = runId;
    const syncId = randomBytes(4).toString('hex');
    const started = clock.now();
    const deadlineAt = started + this.settings.timeoutMs;
    const remaining = (): number => Math.max(1, deadlineAt - clock.now());
    const transferDeadlineAt = deadlineAt - Math.floor(this.settings.timeoutMs * COMPLETION_RESERVE);
    const transferRemaining = (): number => Math.max(1, transferDeadlineAt - clock.now());
    const phasesMs: Record<string, number> = {};
    const cutOff: Array<{ id: string; reason: string }> = [];
    let alive = [...members];
    const log = this.log.child({ syncId, policyVersion: version });

    /** Runs one phase on every live generator; those that fail are cut off. */
    const phase = async (name: string, call: (admin: VllmAdmin, g: GeneratorRecord) => Promise<void>): Promise<void> => {
      const t0 = clock.now();
      const results = await Promise.allSettled(alive.map((g) => call(this.deps.admin(g.url), g)));
      const survivors: GeneratorRecord[] = [];
      results.forEach((r, i) => {
        const g = alive[i] as GeneratorRecord;
        if (r.status === 'fulfilled') survivors.push(g);
        else {
          const reason = `${name}: ${TandemError.from(r.reason).message}`;
          cutOff.push({ id: g.id, reason });
          log.warn({ generator: g.id, reason }, 'generator cut off from the weight sync');
        }
      });
      alive = survivors;
      phasesMs[name] = clock.now() - t0;
      metrics.weightSyncSeconds.observe({ run, phase: name }, phasesMs[name] / 1000);
    };

    // 1. (Re-)form the transfer group when membership changed: world sizes
    //    first (cheap), so that ranks are known before anyone joins.
    const key = alive.map((g) => `${g.id}@${g.url}`).sort().join(',');
    const { layout, packing } = splitUpdateInfo(this.updateInfo);
    const reformed = key !== this.groupKey || JSON.stringify(packing) !== this.groupPacking;
    // Unchanged membership keeps the group's size (generators may hold
    // several ranks each with tensor parallelism).
    let worldSize = this.groupWorldSize;
    const offsets = new Map<string, number>();
    if (reformed) {
      const sizes = new Map<string, number>();
      await phase('world_size', async (admin, g) => {
        sizes.set(g.id, await admin.worldSize(transferRemaining()));
      });
      let offset = 1;
      for (const g of alive) {
        offsets.set(g.id, offset);
        offset += sizes.get(g.id) ?? 1;
      }
      worldSize = offset;
      this.groupId = `${runId}-${syncId}`;
      this.groupWorldSize = worldSize;
    }

    // 2. The trainer starts now: it (re)joins the group when groupId is new,
    //    then broadcasts. Joining and broadcasting are collectives, so it
    //    waits for the generators' init and update calls below; starting it
    //    only after them would deadlock a real NCCL/gloo rendezvous.
    const t0 = clock.now();
    const trainerSend = this.sendFromTrainer(version, syncId, worldSize, reformed, transferRemaining());
    if (reformed) {
      const masterAddress = this.deps.sessions.get(runId)?.address ?? '127.0.0.1';
      this.placements.clear();
      await phase('init', async (admin, g) => {
        const placement = await admin.initWeightTransferEngine(
          { master_address: masterAddress, master_port: this.settings.transferPort, rank_offset: offsets.get(g.id) ?? 1, world_size: worldSize },
          packing,
          transferRemaining(),
        );
        this.placements.set(g.id, placement);
      });
      this.groupKey = alive.map((g) => `${g.id}@${g.url}`).sort().join(',');
      this.groupPacking = JSON.stringify(packing);
      log.info({ generators: alive.map((g) => g.id), worldSize }, 'transfer group formed');
    }

    await Promise.all(alive.map((g) => registry.update(g.id, { state: 'syncing', updatedAtMs: clock.now() }, g.url)));
    await phase('pause', (admin) => admin.pause(this.settings.inFlightWeightUpdates ? 'keep' : 'wait', transferRemaining()));
    await phase('start', (admin) => admin.startWeightUpdate(transferRemaining()));

    // 3. The generators receive while the trainer broadcasts.
    const [sent] = await Promise.all([
      trainerSend,
      phase('update', (admin, g) => admin.updateWeights(layout, packing, this.placements.get(g.id) ?? 'init', version, transferRemaining())),
    ]);
    phasesMs.broadcast = clock.now() - t0;
    const sentVersion = sent.ok ? sent.policyVersion : version;

    // Cut-off generators are marked before anything is published, so that a
    // reader who sees the new version also sees who was left behind.
    for (const c of cutOff) {
      const previous = this.cutOffs.get(c.id)?.count ?? 0;
      const coolDownMs = Math.min(REJOIN_MAX_MS, REJOIN_BASE_MS * 2 ** previous);
      this.cutOffs.set(c.id, { count: previous + 1, notBeforeMs: clock.now() + coolDownMs });
      const cutUrl = (members.find((m) => m.id === c.id) as GeneratorRecord).url;
      await registry.update(c.id, { state: 'unhealthy', reason: `${c.reason} (may rejoin in ${Math.round(coolDownMs / 1000)} s)`, updatedAtMs: clock.now() }, cutUrl);
      await this.deps.journal?.('Warning', 'GeneratorCutOff', `${c.id} cut off from the weight sync to version ${version}: ${c.reason}; may rejoin in ${Math.round(coolDownMs / 1000)} s`);
      // Best effort: close an update it may have started (else its next
      // start_weight_update is refused) and do not leave it paused. It is
      // out of service until a full sync, so partial weights are never served.
      const admin = this.deps.admin((members.find((m) => m.id === c.id) as GeneratorRecord).url);
      void admin
        .finishWeightUpdate(version, 1000)
        .catch(() => undefined)
        .then(() => admin.resume(1000))
        .catch(() => undefined);
    }
    let result: SyncReport['result'];
    if (!sent.ok) {
      // The broadcast did not complete: every receiver holds a partial update.
      // Nobody serves it; they all rejoin and get a full sync next round.
      log.error({ error: sent.error }, 'trainer broadcast failed; generators will be re-synced');
      await this.deps.journal?.('Warning', 'WeightSyncFailed', `the trainer's broadcast of version ${version} failed (${sent.error}); every generator gets a full sync next time`);
      // vLLM has no "abort update": close the update so that the next sync can
      // start a new one, and take them out of service (`joining`, never
      // chosen by rollout workers) until a full sync overwrites every weight.
      await Promise.all(alive.map((g) => registry.update(g.id, { state: 'joining', policyVersion: -1, updatedAtMs: clock.now() }, g.url)));
      await Promise.allSettled(
        alive.map(async (g) => {
          const admin = this.deps.admin(g.url);
          await admin.finishWeightUpdate(version, 2000);
          await admin.resume(2000);
        }),
      );
      this.groupKey = '';
      result = 'failed';
    } else {
      await phase('finish', (admin) => admin.finishWeightUpdate(sentVersion, remaining()));
      await phase('resume', (admin) => admin.resume(remaining()));
      await Promise.all(
        alive.map((g) => registry.update(g.id, { state: 'ready', policyVersion: sentVersion, updatedAtMs: clock.now() }, g.url)),
      );
      for (const g of alive) this.cutOffs.delete(g.id);
      if (alive.length > 0) await this.deps.queue.publishPolicyVersion(sentVersion);
      result = alive.length === 0 ? 'failed' : cutOff.length > 0 ? 'partial' : 'ok';
    }
    if (cutOff.length > 0) this.groupKey = '';
    phasesMs.total = clock.now() - started;
    metrics.weightSyncSeconds.observe({ run, phase: 'total' }, phasesMs.total / 1000);
    metrics.weightSyncs.inc({ run, result });
    const report: SyncReport = {
      syncId,
      policyVersion: sentVersion,
      generators: alive.map((g) => g.id),
      cutOff,
      groupReformed: reformed,
      phasesMs,
      result,
    };
    this.reports.push(report);
    if (this.reports.length > 1000) this.reports.shift();
    log.info({ result, generators: report.generators.length, cutOff: cutOff.length, totalMs: phasesMs.total }, 'weight sync done');
    // Gauges show the sync's outcome now, not at the next health round
    // (there is none after the run's last sync).
    this.observeGenerators(await registry.list());
    return report;
  }

  /** Tells the trainer to broadcast and waits for its answer (or the deadline). */
  private sendFromTrainer(version: number, syncId: string, worldSize: number, formsGroup: boolean, deadlineMs: number): Promise<WeightsSent> {
    const trainer = this.deps.sessions.get(this.deps.runId);
    return new Promise<WeightsSent>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingSends.delete(syncId);
        this.sendTargets.delete(syncId);
        resolve({ policyVersion: version, ok: false, error: `trainer did not finish the broadcast within ${deadlineMs} ms`, seconds: 0, syncId });
      }, deadlineMs);
      this.pendingSends.set(syncId, (r) => {
        clearTimeout(timer);
        this.pendingSends.delete(syncId);
        this.sendTargets.delete(syncId);
        resolve(r);
      });
      if (trainer) this.sendTargets.set(syncId, { trainerId: trainer.trainerId, version });
      const sent = this.deps.sessions.send(
        this.deps.runId,
        ControlMessage.fromPartial({
          kind: {
            $case: 'sendWeights',
            sendWeights: {
              policyVersion: version,
              syncId,
              masterAddress: trainer?.address ?? '127.0.0.1',
              masterPort: this.settings.transferPort,
              worldSize,
              deadlineMs,
              groupId: this.groupId,
              formsGroup,
            },
          },
        }),
      );
      if (!sent) {
        clearTimeout(timer);
        this.pendingSends.delete(syncId);
        this.sendTargets.delete(syncId);
        resolve({ policyVersion: version, ok: false, error: 'no trainer attached', seconds: 0, syncId });
      }
    });
  }

  /** Health checks: cut off generators that stop answering; bring back those that recover. */
  private async checkHealth(): Promise<void> {
    const members = await this.deps.registry.list();
    await Promise.all(
      members.map(async (g) => {
        let healthy = true;
        try {
          await this.deps.admin(g.url).health(HEALTH_TIMEOUT_MS);
        } catch {
          healthy = false;
        }
        if (healthy) await this.sampleLoad(g);
        const failures = healthy ? 0 : (this.healthFailures.get(g.id) ?? 0) + 1;
        this.healthFailures.set(g.id, failures);
        if (!healthy && failures >= this.settings.unhealthyAfterFailures && g.state !== 'unhealthy') {
          await this.deps.registry.update(g.id, { state: 'unhealthy', reason: `${failures} failed health checks`, updatedAtMs: this.deps.clock.now() }, g.url);
          this.groupKey = '';
          this.log.warn({ generator: g.id }, 'generator failed its health checks; out of the group');
          await this.deps.journal?.('Warning', 'GeneratorUnhealthy', `${g.id} (${g.url}) failed ${failures} health checks in a row; out of service`);
        } else if (healthy && g.state === 'unhealthy' && (this.cutOffs.get(g.id)?.notBeforeMs ?? 0) <= this.deps.clock.now()) {
          // Its weights are unknown: it must get a full sync before it serves.
          await this.deps.registry.update(g.id, { state: 'joining', policyVersion: -1, updatedAtMs: this.deps.clock.now() }, g.url);
          this.log.info({ generator: g.id }, 'generator healthy again; rejoins at the next sync');
          await this.deps.journal?.('Normal', 'GeneratorRejoining', `${g.id} answers its health checks again; it rejoins at the next weight sync`);
          this.kick?.();
        }
      }),
    );
    this.observeGenerators(await this.deps.registry.list());
  }

  /**
   * Busy ratio since the last sample: from cumulative busy seconds when the
   * generator reports them (simulator), else an exponentially weighted share
   * of samples with requests running (vLLM).
   */
  private async sampleLoad(g: GeneratorRecord): Promise<void> {
    let load;
    try {
      load = await this.deps.admin(g.url).load(HEALTH_TIMEOUT_MS);
    } catch {
      return;
    }
    const now = this.deps.clock.now();
    const prev = this.loadSamples.get(g.id);
    let ratio: number | undefined;
    let busyEwma = prev?.busyEwma ?? 0;
    if (load.busySeconds !== undefined) {
      if (prev?.busySeconds !== undefined && now > prev.t && load.busySeconds >= prev.busySeconds) {
        ratio = Math.min(1, (load.busySeconds - prev.busySeconds) / ((now - prev.t) / 1000));
      }
    } else if (load.running !== undefined) {
      busyEwma = 0.7 * busyEwma + 0.3 * (load.running > 0 ? 1 : 0);
      ratio = busyEwma;
    }
    this.loadSamples.set(g.id, { t: now, busyEwma, ...(load.busySeconds === undefined ? {} : { busySeconds: load.busySeconds }) });
    if (ratio !== undefined) this.deps.metrics.generatorBusyRatio.set({ run: this.deps.runId, generator: g.id }, ratio);
  }

  private observeGenerators(members: GeneratorRecord[]): void {
    const run = this.deps.runId;
    const counts: Record<string, number> = { joining: 0, ready: 0, syncing: 0, unhealthy: 0 };
    for (const g of members) {
      counts[g.state] = (counts[g.state] ?? 0) + 1;
      this.deps.metrics.generatorPolicyVersion.set({ run, generator: g.id }, g.policyVersion);
    }
    for (const [state, n] of Object.entries(counts)) this.deps.metrics.generators.set({ run, state }, n);
  }
}
