import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import type { PromptJob, PromptQueue, RolloutQueue } from '@tandem/rollout-queue';
import type { PromptSource } from './prompt-source.js';
import type { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';

/** Collaborators of an {@link Admitter}. */
export interface AdmitterDeps {
  queue: RolloutQueue;
  prompts: PromptQueue;
  source: PromptSource;
  metrics: ControlPlaneMetrics;
  clock: Clock;
  log: Logger;
}

/** Options of an {@link Admitter}. */
export interface AdmitterOptions {
  /** How long one admission call may block before the loop re-checks. @default 5000 */
  admitTimeoutMs?: number;
  /** How often admitted groups are checked for a missing BullMQ job. @default 5000 */
  sweepIntervalMs?: number;
}

/** Admitted groups waiting for their BullMQ jobs beyond which admission waits for the enqueue. */
const MAX_PENDING_ENQUEUES = 512;

/**
 * Feeds one run: admits prompt groups as fast as the staleness contract
 * allows and enqueues each on the run's BullMQ prompt queue for rollout
 * workers. Admission (Lua) and enqueue (BullMQ) are two steps, so a sweep
 * re-enqueues any in-flight group that has no job (a crash between the two);
 * job ids are group ids, so a double enqueue is a no-op.
 *
 * The two steps are pipelined: admission goes on while the groups admitted
 * so far are enqueued, and every group admitted while one enqueue is in
 * flight goes into the next one (`addBulk`, one round trip). Under load a
 * round trip carries many groups; when idle, each group is enqueued at once.
 */
export class Admitter {
  private readonly deps: AdmitterDeps;
  private readonly admitTimeoutMs: number;
  private readonly sweepIntervalMs: number;
  private readonly abort = new AbortController();
  /** Ends the sweep's sleep once admission has ended (else the run's end is noticed up to one sweep interval late). */
  private readonly admissionDone = new AbortController();
  private loop: Promise<void> | undefined;
  private pending: PromptJob[] = [];
  private flushing: Promise<void> | undefined;

  constructor(deps: AdmitterDeps, options: AdmitterOptions = {}) {
    this.deps = deps;
    this.admitTimeoutMs = options.admitTimeoutMs ?? 5000;
    this.sweepIntervalMs = options.sweepIntervalMs ?? 5000;
  }

  /** Starts admitting; resolves when the run ends or `stop` is called. */
  start(): Promise<void> {
    this.loop ??= Promise.all([this.admitLoop().finally(() => this.admissionDone.abort()), this.sweepLoop()]).then(() => undefined);
    return this.loop;
  }

  async stop(): Promise<void> {
    this.abort.abort(new TandemError(ErrorCode.Cancelled, 'admitter stopped'));
    await this.loop;
  }

  /** Re-enqueues in-flight groups that have no job. Returns how many. */
  async sweep(): Promise<number> {
    const { queue, prompts } = this.deps;
    const inflight = await queue.inFlightGroups();
    if (inflight.length === 0) return 0;
    const promptIds = await queue.groupPrompts();
    const snap = await queue.snapshot();
    const missing: Array<{ groupId: string; targetStep: number }> = [];
    for (const g of inflight) if (!(await prompts.has(g.groupId))) missing.push(g);
    if (missing.length === 0) return 0;
    // A worker may have finished a group (and BullMQ dropped its job) between
    // the two reads above: only groups still in flight now lack a job.
    const stillInFlight = new Set((await queue.inFlightGroups()).map((g) => g.groupId));
    let readded = 0;
    for (const { groupId, targetStep } of missing) {
      if (!stillInFlight.has(groupId) || (await prompts.has(groupId))) continue;
      const promptId = promptIds.get(groupId) ?? '0';
      await this.enqueue(groupId, promptId, targetStep, snap.policyVersion);
      readded++;
    }
    if (readded > 0) this.deps.log.warn({ readded }, 'sweep re-enqueued admitted groups that had no job');
    return readded;
  }

  private async admitLoop(): Promise<void> {
    const { queue, metrics, clock, log } = this.deps;
    const signal = this.abort.signal;
    let waitStart = clock.now();
    while (!signal.aborted) {
      let attempt;
      try {
        attempt = await queue.admit({ timeoutMs: this.admitTimeoutMs, signal });
      } catch (err) {
        const e = TandemError.from(err);
        if (e.code === ErrorCode.DeadlineExceeded) continue;
        if (signal.aborted) break;
        log.error({ err: e }, 'admission failed; retrying');
        await clock.sleep(1000, signal).catch(() => undefined);
        continue;
      }
      if (attempt.kind === 'ended') {
        log.info({ state: attempt.state }, 'admission finished');
        break;
      }
      metrics.admissionWait.observe({ run: queue.runId }, (clock.now() - waitStart) / 1000);
      const a = attempt.admission;
      try {
        this.pending.push(this.jobOf(a.groupId, a.promptId, a.targetStep, a.policyVersion));
        this.flush();
      } catch (err) {
        log.error({ err, groupId: a.groupId, step: a.targetStep }, 'enqueue failed');
      }
      if (this.pending.length >= MAX_PENDING_ENQUEUES) await this.flushing;
      waitStart = clock.now();
    }
    // Whatever was admitted is enqueued before the loop ends.
    while (this.flushing) await this.flushing;
  }

  /** Starts enqueueing the pending groups unless an enqueue is in flight (it picks them up next). */
  private flush(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      while (this.pending.length > 0) {
        const jobs = this.pending;
        this.pending = [];
        try {
          await this.deps.prompts.addMany(jobs);
        } catch (err) {
          // The sweep re-enqueues them; admission state in Redis is the truth.
          this.deps.log.error({ err, groups: jobs.length, step: jobs[0]?.targetStep }, 'enqueue failed');
        }
      }
      this.flushing = undefined;
    })();
  }

  private async sweepLoop(): Promise<void> {
    const signal = AbortSignal.any([this.abort.signal, this.admissionDone.signal]);
    while (!signal.aborted) {
      try {
        await this.deps.clock.sleep(this.sweepIntervalMs, signal);
      } catch {
        break;
      }
      try {
        const snap = await this.deps.queue.snapshot();
        if (snap.state !== 'open') break;
        await this.sweep();
      } catch (err) {
        this.deps.log.warn({ err }, 'sweep failed');
      }
    }
  }

  private async enqueue(groupId: string, promptId: string, targetStep: number, policyVersion: number): Promise<void> {
    await this.deps.prompts.add(this.jobOf(groupId, promptId, targetStep, policyVersion));
  }

  private jobOf(groupId: string, promptId: string, targetStep: number, policyVersion: number): PromptJob {
    const prompt = this.deps.source.get(Number(promptId));
    return {
      runId: this.deps.queue.runId,
      groupId,
      promptId,
      targetStep,
      policyVersion,
      prompt: prompt.text,
      ...(prompt.answer === undefined ? {} : { answer: prompt.answer }),
      ...(prompt.tokenIds === undefined ? {} : { promptTokenIds: prompt.tokenIds }),
    };
  }
}
