import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import { scripts, type RolloutRedis } from './lua-script.js';
import { runKeys, type RunKeys } from './keys.js';
import { scriptError } from './queue-errors.js';
import type { RunEvents } from './run-events.js';
import type { EncodedGroup } from './prompt-group-codec.js';
import { scanKeys } from './redis-connection.js';

/** Staleness and size settings of one run's queue. */
export interface RunQueueSettings {
  /** The staleness bound k (maxTrajectoryAgeSteps). */
  maxTrajectoryAgeSteps: number;
  /** Groups per batch. */
  batchGroups: number;
  /** In-flight plus finished groups allowed at once. */
  capacityGroups: number;
  /** Steps in the run. */
  maxSteps: number;
}

/** A group admitted for a target step. */
export interface Admission {
  groupId: string;
  /** Draw number of the prompt (the dataset index modulo its size). */
  promptId: string;
  targetStep: number;
  /** The policy version in force at admission. */
  policyVersion: number;
}

/** Why an admission did not happen now. */
export type AdmissionBlock = 'capacity' | 'version' | 'slots';

/** Result of one admission attempt. */
export type AdmitAttempt =
  | { kind: 'admitted'; admission: Admission }
  | { kind: 'blocked'; reason: AdmissionBlock }
  | { kind: 'ended'; state: 'complete' | 'closed' };

/** Result of storing a finished group. */
export interface CompleteResult {
  targetStep: number;
  /** True when the group was already too old for its target and was dropped. */
  droppedStale: boolean;
}

/** The batch for one step. */
export interface ServedBatch {
  step: number;
  groupIds: string[];
  /** Encoded tandem.v1.PromptGroup of each group, in the same order. */
  payloads: Buffer[];
  /** Oldest policy version of each group, in the same order (age = step − this). */
  minPolicyVersions: number[];
  /** Completion tokens of each group, in the same order. */
  tokens: number[];
  /** True when this batch had been served before and never acked. */
  reserved: boolean;
  droppedStale: number;
}

/** Result of one attempt to serve a batch. */
export type ServeAttempt =
  | { kind: 'ready'; batch: ServedBatch }
  | { kind: 'not_ready'; droppedStale: number; freshFinished: number }
  | { kind: 'ended'; state: 'complete' | 'closed' };

/** Result of acking a batch. */
export interface AckResult {
  trainerStep: number;
  groupsTrained: number;
  duplicate: boolean;
}

/** Ledger counters of a run. */
export interface Ledger {
  admitted: number;
  trained: number;
  droppedStale: number;
  failed: number;
  cancelled: number;
  tokensTrained: number;
  tokensWasted: number;
}

/** Lifecycle state of a run's queue. */
export type QueueState = 'open' | 'complete' | 'cancelled' | 'failed';

/** Everything a status page needs about a run's queue, read in one round trip. */
export interface QueueSnapshot {
  state: QueueState;
  settings: RunQueueSettings;
  policyVersion: number;
  trainerStep: number;
  inFlight: number;
  queueDepth: number;
  ledger: Ledger;
}

/** State of one group, for audits and tests. */
export type GroupState = 'inflight' | 'finished' | 'served' | 'trained' | 'dropped_stale' | 'failed' | 'cancelled';

/** Collaborators of a {@link RolloutQueue}. */
export interface RolloutQueueDeps {
  redis: RolloutRedis;
  events: RunEvents;
  clock: Clock;
  log: Logger;
  keyPrefix?: string;
  /**
   * The control-plane leader's fencing token (services/control-plane/src/ha).
   * When it returns a number, the leader-only transitions (admit, serve,
   * ack, publish version, close) carry it and Redis refuses them once a
   * newer leader raised the run's fence (UNAVAILABLE, reason FENCED).
   * Absent or undefined: unfenced (rollout workers; leader election off).
   */
  fencingToken?: () => number | undefined;
}

/** Options for blocking calls. */
export interface WaitOptions {
  /** Give up after this long. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Safety-net re-check while blocked, in case a wake-up message was lost
 * (subscriber reconnect). Waiting is event-driven; this is not a poll loop.
 */
const RECHECK_MS = 1000;

/**
 * One run's rollout queue in Redis: admission by target step, finished
 * groups, batch serving with the staleness check, acks, and the ledger.
 * Every transition that can race is one Lua script (see lua/).
 */
export class RolloutQueue {
  readonly runId: string;
  readonly keys: RunKeys;
  private readonly redis: RolloutRedis;
  private readonly events: RunEvents;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly fencingToken: () => number | undefined;

  constructor(runId: string, deps: RolloutQueueDeps) {
    this.runId = runId;
    this.keys = runKeys(runId, deps.keyPrefix);
    this.redis = deps.redis;
    this.events = deps.events;
    this.clock = deps.clock;
    this.log = deps.log.child({ runId });
    this.fencingToken = deps.fencingToken ?? (() => undefined);
  }

  /** The fencing-token argument of the leader-only scripts ('' = unfenced). */
  private fence(): { arg: string; token: number | undefined } {
    const token = this.fencingToken();
    return { arg: token === undefined ? '' : String(token), token };
  }

  /** The context of a script error (names the token when fenced). */
  private ctx(extra: { step?: number; groupId?: string } = {}, token?: number): { runId: string; step?: number; groupId?: string; fencingToken?: number } {
    return { runId: this.runId, ...extra, ...(token === undefined ? {} : { fencingToken: token }) };
  }

  /**
   * Takes the run over for the leader holding `token`: raises the run's
   * fence to it, so leaders with older tokens can no longer change the run.
   * Throws UNAVAILABLE (FENCED) when a newer leader already holds it.
   */
  async raiseFence(token: number): Promise<void> {
    if (!Number.isSafeInteger(token) || token < 1) {
      throw TandemError.invalid('fencing token', [{ path: 'token', message: 'must be a positive integer' }]);
    }
    const reply = await scripts.raiseFence.run(this.redis, [this.keys.meta, this.keys.fence], [token]);
    if (typeof reply === 'number' && reply < 0) throw scriptError(reply, this.ctx({}, token));
  }

  /**
   * Creates the run's queue state, or leaves it untouched when it exists
   * (a restarted control plane resumes where it was).
   */
  async init(settings: RunQueueSettings): Promise<void> {
    validateSettings(settings);
    const fields: Record<string, string | number> = {
      k: settings.maxTrajectoryAgeSteps,
      batchGroups: settings.batchGroups,
      capacity: settings.capacityGroups,
      maxSteps: settings.maxSteps,
      policyVersion: 0,
      trainerStep: 0,
      servedStep: -1,
      promptSeq: 0,
      groupSeq: 0,
      state: 'open',
    };
    // HSETNX per field: idempotent, and never resets a running queue. In
    // one MULTI, so a crash (or an AOF cut) never leaves a partial `meta`
    // that every script would trip over.
    const tx = this.redis.multi();
    for (const [f, v] of Object.entries(fields)) tx.hsetnx(this.keys.meta, f, v);
    await tx.exec();
    // A run created by a leader belongs to it from the start.
    const token = this.fencingToken();
    if (token !== undefined) await this.raiseFence(token);
  }

  /** One admission attempt; never blocks. */
  async tryAdmit(): Promise<AdmitAttempt> {
    const fence = this.fence();
    const reply = await scripts.admit.run(this.redis, [...this.keys.common, this.keys.fence], [this.keys.events, fence.arg]);
    if (reply === -11 || reply === -12) throw scriptError(reply, this.ctx({}, fence.token));
    if (typeof reply === 'number') return { kind: 'ended', state: reply === -2 ? 'complete' : 'closed' };
    const r = reply as [number, ...unknown[]];
    if (r[0] === 1) {
      return {
        kind: 'admitted',
        admission: {
          targetStep: Number(r[1]),
          policyVersion: Number(r[2]),
          groupId: String(r[3]),
          promptId: String(r[4]),
        },
      };
    }
    return { kind: 'blocked', reason: String(r[1]) as AdmissionBlock };
  }

  /**
   * Admits one group, waiting (without spinning: woken by the run's events)
   * while the staleness bound or the capacity holds it back. Throws
   * DEADLINE_EXCEEDED after `timeoutMs`; returns `ended` when the run is over.
   */
  async admit(options: WaitOptions): Promise<Exclude<AdmitAttempt, { kind: 'blocked' }>> {
    const deadline = this.clock.now() + options.timeoutMs;
    // Fast path: while admission is open (a producer keeping up), no waiter
    // (timer, abort listener) is set up per group only to be cancelled.
    const first = await this.tryAdmit();
    if (first.kind !== 'blocked') return first;
    for (;;) {
      const woken = this.events.waiter(this.keys.events, Math.min(RECHECK_MS, deadline - this.clock.now()), options.signal);
      let attempt: AdmitAttempt;
      try {
        attempt = await this.tryAdmit();
      } catch (err) {
        woken.cancel();
        throw err;
      }
      if (attempt.kind !== 'blocked') {
        woken.cancel();
        return attempt;
      }
      if (options.signal?.aborted) {
        woken.cancel();
        throw new TandemError(ErrorCode.Cancelled, 'admission aborted');
      }
      if (this.clock.now() >= deadline) {
        woken.cancel();
        throw new TandemError(ErrorCode.DeadlineExceeded, `admission for run ${this.runId} blocked by ${attempt.reason}`);
      }
      await woken.promise;
    }
  }

  /**
   * Stores a finished, validated group (see encodePromptGroup). One MULTI:
   * the payload is staged with HSETNX and the script decides (see
   * complete-10.lua), so the ~64 KiB never pass through Lua.
   */
  async complete(group: EncodedGroup): Promise<CompleteResult> {
    const results = await this.redis
      .multi()
      .hsetnx(this.keys.payload, group.groupId, group.payload)
      .eval(
        ...scripts.complete.evalArgs(this.keys.common, [
          this.keys.events,
          group.groupId,
          group.minPolicyVersion,
          group.maxPolicyVersion,
          group.tokens,
        ]),
      )
      .exec();
    const [staged, script] = results ?? [];
    if (!staged || !script) throw new TandemError(ErrorCode.Internal, `completing group ${group.groupId} of run ${this.runId}: transaction aborted`);
    if (staged[0]) throw staged[0];
    if (script[0]) throw script[0];
    const reply = script[1];
    if (typeof reply === 'number') throw scriptError(reply, { runId: this.runId, groupId: group.groupId });
    const r = reply as [number, number];
    return { targetStep: Number(r[1]), droppedStale: r[0] === 2 };
  }

  /** Ends an in-flight group as failed (generation failed for good). */
  async fail(groupId: string, reason: string): Promise<void> {
    await this.release(groupId, 'failed', false);
    this.log.warn({ groupId, reason }, 'group failed');
  }

  /**
   * Ends an in-flight group as cancelled, e.g. because it can no longer be
   * fresh. With `readmit` its prompt is admitted again later, so the prompt
   * is not lost.
   */
  async cancel(groupId: string, options: { readmit: boolean }): Promise<void> {
    await this.release(groupId, 'cancelled', options.readmit);
  }

  private async release(groupId: string, outcome: 'failed' | 'cancelled', readmit: boolean): Promise<void> {
    const reply = await scripts.release.run(this.redis, this.keys.common, [
      this.keys.events,
      groupId,
      outcome,
      readmit ? '1' : '0',
    ]);
    if (typeof reply === 'number') throw scriptError(reply, { runId: this.runId, groupId });
  }

  /** One attempt to serve the batch for `step`; never blocks. */
  async tryServeBatch(step: number): Promise<ServeAttempt> {
    return (await this.serveOnce(step)).attempt;
  }

  /** {@link tryServeBatch}, plus how many more groups must finish before the batch can be ready. */
  private async serveOnce(step: number): Promise<{ attempt: ServeAttempt; groupsMissing: number }> {
    // The script serves ids; payloads are read after it (see serve-batch-11.lua).
    // A payload can only vanish in between when the step was acked or the run
    // closed meanwhile: asking the script again then answers why. A second
    // miss means the run's state is damaged.
    for (let round = 0; ; round++) {
      const served = await this.serveIds(step);
      if (served.attempt.kind !== 'ready') return served;
      const batch = served.attempt.batch;
      const payloads = batch.groupIds.length > 0 ? await this.redis.hmgetBuffer(this.keys.payload, ...batch.groupIds) : [];
      const missing = payloads.findIndex((p) => !Buffer.isBuffer(p) || p.byteLength === 0);
      if (missing < 0) {
        batch.payloads = payloads as Buffer[];
        return served;
      }
      // Never serve a hole.
      if (round > 0) throw new TandemError(ErrorCode.Internal, `group ${batch.groupIds[missing]} of run ${this.runId} has no payload`);
    }
  }

  private async serveIds(step: number): Promise<{ attempt: ServeAttempt; groupsMissing: number }> {
    const fence = this.fence();
    const reply = await scripts.serveBatch.runBuffer(this.redis, [...this.keys.common, this.keys.batch(step), this.keys.fence], [
      this.keys.events,
      step,
      fence.arg,
    ]);
    if (typeof reply === 'number') {
      if (reply === -2) return { attempt: { kind: 'ended', state: 'complete' }, groupsMissing: 0 };
      if (reply === -1) return { attempt: { kind: 'ended', state: 'closed' }, groupsMissing: 0 };
      throw scriptError(reply, this.ctx({ step }, fence.token));
    }
    const r = reply as Array<number | Buffer>;
    if (r[0] === 0) {
      const freshFinished = Number(r[2]);
      return {
        attempt: { kind: 'not_ready', droppedStale: Number(r[1]), freshFinished },
        groupsMissing: Math.max(1, Number(r[3] ?? freshFinished + 1) - freshFinished),
      };
    }
    const n = Number(r[3]);
    const groupIds = r.slice(4, 4 + n).map((b) => b.toString());
    const metas = r.slice(4 + n, 4 + 2 * n).map((b) => String(b).split(':').map(Number));
    const attempt: ServeAttempt = {
      kind: 'ready',
      batch: {
        step,
        groupIds,
        payloads: [],
        minPolicyVersions: metas.map((m) => m[0] ?? 0),
        tokens: metas.map((m) => m[2] ?? 0),
        reserved: r[1] === 1,
        droppedStale: Number(r[2]),
      },
    };
    return { attempt, groupsMissing: 0 };
  }

  /**
   * Serves the batch for `step`, waiting for it to fill (long poll). Returns
   * `not_ready` when `timeoutMs` passes first; stale groups found while
   * waiting are dropped and counted in the result.
   */
  async serveBatch(step: number, options: WaitOptions): Promise<ServeAttempt> {
    const deadline = this.clock.now() + options.timeoutMs;
    let dropped = 0;
    for (;;) {
      const woken = this.events.waiter(this.keys.events, Math.min(RECHECK_MS, deadline - this.clock.now()), options.signal);
      let attempt: ServeAttempt;
      let groupsMissing: number;
      try {
        ({ attempt, groupsMissing } = await this.serveOnce(step));
      } catch (err) {
        woken.cancel();
        throw err;
      }
      if (attempt.kind === 'ready') {
        woken.cancel();
        attempt.batch.droppedStale += dropped;
        return attempt;
      }
      if (attempt.kind === 'ended') {
        woken.cancel();
        return attempt;
      }
      dropped += attempt.droppedStale;
      if (this.clock.now() >= deadline || options.signal?.aborted) {
        woken.cancel();
        return { ...attempt, droppedStale: dropped };
      }
      // Only a finished group can complete the batch, one per "finished"
      // event: checking again before `groupsMissing` of them arrived would
      // find it not ready again (any other event still wakes us at once).
      woken.untilFinished(groupsMissing);
      await woken.promise;
    }
  }

  /**
   * Records the batch for `step` as trained. With `publishVersion` the
   * generators' version follows the trainer's at once (no weight-sync
   * coordinator in the loop); otherwise the coordinator publishes it.
   */
  async ackBatch(step: number, options: { publishVersion: boolean }): Promise<AckResult> {
    const fence = this.fence();
    const reply = await scripts.ackBatch.run(this.redis, [...this.keys.common, this.keys.batch(step), this.keys.fence], [
      this.keys.events,
      step,
      options.publishVersion ? '1' : '0',
      fence.arg,
    ]);
    if (typeof reply === 'number') throw scriptError(reply, this.ctx({ step }, fence.token));
    const r = reply as [number, number, number];
    return { trainerStep: Number(r[1]), groupsTrained: Number(r[2]), duplicate: r[0] === 2 };
  }

  /** Publishes the policy version the generators serve; returns the version in force. */
  async publishPolicyVersion(version: number): Promise<number> {
    if (!Number.isInteger(version) || version < 0) {
      throw TandemError.invalid('policy version', [{ path: 'version', message: 'must be a non-negative integer' }]);
    }
    const fence = this.fence();
    const reply = await scripts.publishVersion.run(this.redis, [...this.keys.common, this.keys.fence], [this.keys.events, version, fence.arg]);
    if (typeof reply === 'number' && reply < 0) throw scriptError(reply, this.ctx({}, fence.token));
    return Number(reply);
  }

  /**
   * Closes a run that will not complete: every open group ends as cancelled.
   * Returns how many groups were cancelled (0 when already closed).
   */
  async close(state: 'cancelled' | 'failed'): Promise<number> {
    // The served batch's key is named after the trainer step, which an ack
    // can move between this read and the script: the script then changes
    // nothing and says so, and we go again with the new step.
    let trainerStep = Number((await this.redis.hget(this.keys.meta, 'trainerStep')) ?? 0);
    const fence = this.fence();
    for (;;) {
      const reply = await scripts.closeRun.run(this.redis, [...this.keys.common, this.keys.batch(trainerStep), this.keys.fence], [
        this.keys.events,
        state,
        fence.arg,
        trainerStep,
      ]);
      if (typeof reply === 'number') throw scriptError(reply, this.ctx({}, fence.token));
      const [outcome, value] = reply as [number, number];
      if (outcome === 2) {
        trainerStep = value;
        continue;
      }
      return Number(value);
    }
  }

  /** Reads the queue's counters; NOT_FOUND when the run has no queue. */
  async snapshot(): Promise<QueueSnapshot> {
    const [meta, ledger, inFlight, queueDepth] = await Promise.all([
      this.redis.hgetall(this.keys.meta),
      this.redis.hgetall(this.keys.ledger),
      this.redis.zcard(this.keys.inflight),
      this.redis.zcard(this.keys.finished),
    ]);
    if (meta.state === undefined) throw new TandemError(ErrorCode.NotFound, `run ${this.runId} has no rollout queue`);
    const n = (v: string | undefined): number => Number(v ?? 0);
    return {
      state: meta.state as QueueState,
      settings: {
        maxTrajectoryAgeSteps: n(meta.k),
        batchGroups: n(meta.batchGroups),
        capacityGroups: n(meta.capacity),
        maxSteps: n(meta.maxSteps),
      },
      policyVersion: n(meta.policyVersion),
      trainerStep: n(meta.trainerStep),
      inFlight,
      queueDepth,
      ledger: {
        admitted: n(ledger.admitted),
        trained: n(ledger.trained),
        droppedStale: n(ledger.dropped_stale),
        failed: n(ledger.failed),
        cancelled: n(ledger.cancelled),
        tokensTrained: n(ledger.tokens_trained),
        tokensWasted: n(ledger.tokens_wasted),
      },
    };
  }

  /** State of every group ever admitted (for audits; O(groups)). */
  async groupStates(): Promise<Map<string, GroupState>> {
    const all = await this.redis.hgetall(this.keys.gstate);
    return new Map(Object.entries(all) as Array<[string, GroupState]>);
  }

  /** The prompt id each group was admitted with (for audits). */
  async groupPrompts(): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.redis.hgetall(this.keys.gprompt)));
  }

  /** Ids of groups in flight with their target steps. */
  async inFlightGroups(): Promise<Array<{ groupId: string; targetStep: number }>> {
    const flat = await this.redis.zrange(this.keys.inflight, 0, -1, 'WITHSCORES');
    const out: Array<{ groupId: string; targetStep: number }> = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ groupId: flat[i] as string, targetStep: Number(flat[i + 1]) });
    return out;
  }

  /**
   * Resolves on the next change to the run's queue (a group finished, a
   * step acked, the version moved, the run closed) or after `timeoutMs`.
   */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.events.next(this.keys.events, timeoutMs, signal);
  }

  /** Deletes every key of the run (after it is finished and reported). */
  async destroy(): Promise<number> {
    let deleted = 0;
    // One DEL per batch is legal on a Redis Cluster: the keys share the run's slot.
    for await (const keys of scanKeys(this.redis, this.keys.pattern)) deleted += await this.redis.del(...keys);
    return deleted;
  }
}

function validateSettings(s: RunQueueSettings): void {
  const violations = [];
  if (!Number.isInteger(s.maxTrajectoryAgeSteps) || s.maxTrajectoryAgeSteps < 0) {
    violations.push({ path: 'maxTrajectoryAgeSteps', message: 'must be a non-negative integer' });
  }
  if (!Number.isInteger(s.batchGroups) || s.batchGroups < 1) {
    violations.push({ path: 'batchGroups', message: 'must be a positive integer' });
  }
  if (!Number.isInteger(s.capacityGroups) || s.capacityGroups < s.batchGroups) {
    violations.push({ path: 'capacityGroups', message: 'must be an integer >= batchGroups' });
  }
  if (!Number.isInteger(s.maxSteps) || s.maxSteps < 1) {
    violations.push({ path: 'maxSteps', message: 'must be a positive integer' });
  }
  if (violations.length > 0) throw TandemError.invalid('queue settings', violations);
}
