import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import { PromptGroup, packFloat32, packInt32 } from '@tandem/protocol';
import { encodePromptGroup, type PromptJob, type RolloutQueue } from '@tandem/rollout-queue';
import { fullJitterDelayMs } from './backoff.js';
import type { GeneratorPool } from './generator-pool.js';
import { GenerationError, requestCompletions, type Completion } from './vllm-client.js';
import type { Reward, RewardFunction } from './rewards/index.js';
import type { WorkerStats } from './worker-stats.js';

/** Generation settings of the run a worker serves. */
export interface RolloutSettings {
  model: string;
  groupSize: number;
  maxTokens: number;
  temperature: number;
  /** The staleness bound k. */
  maxTrajectoryAgeSteps: number;
  /** Largest encoded group (TANDEM_MAX_GROUP_BYTES). @default MAX_GROUP_PAYLOAD_BYTES */
  maxGroupBytes?: number;
}

/** Retry and timeout policy of a worker. */
export interface RolloutRetryPolicy {
  /** Per completions request. */
  requestTimeoutMs: number;
  /** Attempts per completion before the group fails. */
  maxAttempts: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Attempts at scoring a group before it fails. */
  rewardAttempts: number;
}

/** Collaborators of a {@link RolloutWorker}. */
export interface RolloutWorkerDeps {
  queue: RolloutQueue;
  pool: GeneratorPool;
  reward: RewardFunction;
  stats: WorkerStats;
  clock: Clock;
  log: Logger;
  random: () => number;
  fetch?: typeof fetch;
}

/** How one job ended. */
export type JobOutcome = 'completed' | 'dropped_stale' | 'failed' | 'gone';

interface GeneratedCompletion extends Completion {
  minVersion: number;
  maxVersion: number;
  generator: string;
  /** The prompt as the generator tokenised it (vLLM `prompt_token_ids`). */
  promptTokenIds: number[] | undefined;
}

/**
 * Turns one admitted prompt into a finished, scored group: G completions
 * requested concurrently (one `n: 1` request each, as TRL's rollout worker
 * does, so one group can spread over generators), each on the least-loaded
 * generator fresh enough for the group's target step, with a timeout and
 * retries (full-jitter backoff, Retry-After honoured). A group whose
 * generation fails for good is recorded as failed, with the reason; nothing
 * malformed ever reaches the queue.
 */
export class RolloutWorker {
  private readonly deps: RolloutWorkerDeps;
  private readonly settings: RolloutSettings;
  private readonly retry: RolloutRetryPolicy;

  constructor(deps: RolloutWorkerDeps, settings: RolloutSettings, retry: RolloutRetryPolicy) {
    this.deps = deps;
    this.settings = settings;
    this.retry = retry;
  }

  async process(job: PromptJob, signal: AbortSignal): Promise<JobOutcome> {
    // `step` as in the control plane's batch logs, so one step's lines join up.
    const log = this.deps.log.child({ groupId: job.groupId, step: job.targetStep });
    let completions: GeneratedCompletion[];
    let rewards: Reward[];
    try {
      completions = await Promise.all(
        Array.from({ length: this.settings.groupSize }, (_, i) => this.generateOne(job, i, signal, log)),
      );
      rewards = await this.score(job, completions, signal);
    } catch (err) {
      if (signal.aborted) throw err;
      const reason = TandemError.from(err).message;
      return this.failGroup(job, reason, log);
    }
    const group = PromptGroup.fromPartial({
      groupId: job.groupId,
      promptId: job.promptId,
      targetStep: job.targetStep,
      minPolicyVersion: Math.min(...completions.map((c) => c.minVersion)),
      maxPolicyVersion: Math.max(...completions.map((c) => c.maxVersion)),
      // Datasets of text prompts carry no ids: keep the generator's own
      // tokenisation, which is what the trainer needs to score the prompt.
      promptTokenIds: packInt32(job.promptTokenIds ?? completions.find((c) => c.promptTokenIds)?.promptTokenIds ?? []),
      promptText: job.prompt,
      trajectories: completions.map((c, i) => ({
        tokenIds: packInt32(c.tokenIds),
        logprobs: packFloat32(c.logprobs),
        reward: rewards[i] ?? 0,
        unscored: rewards[i] === null,
        minPolicyVersion: c.minVersion,
        maxPolicyVersion: c.maxVersion,
        finishReason: c.finishReason,
        text: c.text,
      })),
    });
    try {
      const encoded = encodePromptGroup(group, {
        groupSize: this.settings.groupSize,
        maxTokens: this.settings.maxTokens,
        ...(this.settings.maxGroupBytes === undefined ? {} : { maxGroupBytes: this.settings.maxGroupBytes }),
      });
      const result = await this.deps.queue.complete(encoded);
      if (result.droppedStale) {
        // Name the generators that served too old a version: the ones to look at.
        const k = this.settings.maxTrajectoryAgeSteps;
        const generators = [...new Set(completions.filter((c) => job.targetStep - c.minVersion > k).map((c) => c.generator))];
        log.warn({ minPolicyVersion: group.minPolicyVersion, generators }, 'group finished too old for its target step; dropped');
        return 'dropped_stale';
      }
      return 'completed';
    } catch (err) {
      const e = TandemError.from(err);
      if (e.code === ErrorCode.FailedPrecondition || e.code === ErrorCode.NotFound) {
        // Cancelled (run cancelled, or finished by an earlier delivery of this job).
        log.info({ reason: e.message }, 'group no longer in flight; result discarded');
        return 'gone';
      }
      if (e.code === ErrorCode.InvalidArgument) return this.failGroup(job, e.message, log);
      throw e;
    }
  }

  private async failGroup(job: PromptJob, reason: string, log: Logger): Promise<JobOutcome> {
    try {
      await this.deps.queue.fail(job.groupId, reason);
      log.warn({ reason }, 'group failed for good');
      return 'failed';
    } catch (err) {
      const e = TandemError.from(err);
      if (e.code === ErrorCode.FailedPrecondition || e.code === ErrorCode.NotFound) return 'gone';
      throw e;
    }
  }

  private async generateOne(job: PromptJob, index: number, signal: AbortSignal, log: Logger): Promise<GeneratedCompletion> {
    const { clock, pool, stats } = this.deps;
    let lastError: TandemError | undefined;
    for (let attempt = 0; attempt < this.retry.maxAttempts; attempt++) {
      const lease = await pool.acquire(job.targetStep, this.settings.maxTrajectoryAgeSteps, signal);
      const started = clock.now();
      try {
        const result = await requestCompletions(
          lease.url,
          {
            model: this.settings.model,
            prompt: job.promptTokenIds && job.promptTokenIds.length > 0 ? job.promptTokenIds : job.prompt,
            n: 1,
            maxTokens: this.settings.maxTokens,
            temperature: this.settings.temperature,
          },
          { timeoutMs: this.retry.requestTimeoutMs, signal, nowMs: () => clock.now(), ...(this.deps.fetch ? { fetch: this.deps.fetch } : {}) },
        );
        const completion = result.completions[0] as Completion;
        // Real vLLM reports no version: the generator held lease.policyVersion
        // when the request started, and whatever the registry says now when
        // it ended (a sync may have completed mid-request with pause "keep").
        const minVersion = result.reportedMinVersion ?? lease.policyVersion;
        let maxVersion = minVersion;
        if (result.reportedMaxVersion !== undefined) {
          // The simulator reports the versions that served the request (and
          // never holds partial weights): no registry read on this hot path.
          maxVersion = Math.max(minVersion, result.reportedMaxVersion);
        } else {
          const now = await pool.recordOf(lease.id);
          if (now && (now.state === 'joining' || now.state === 'unhealthy' || now.policyVersion < 0)) {
            // A weight sync failed or cut this generator off while it was
            // generating: the tokens may come from partly updated weights,
            // which no version stamp describes. Generate again elsewhere.
            throw new GenerationError(ErrorCode.Unavailable, `generator ${lease.id} lost its weights during the request (now ${now.state}); generating again`, { generatorFault: false });
          }
          maxVersion = Math.max(minVersion, now?.policyVersion ?? lease.policyVersion);
        }
        lease.release('ok');
        stats.request(lease.id, 'ok', completion.tokenIds.length, clock.now() - started);
        return { ...completion, minVersion, maxVersion, generator: lease.id, promptTokenIds: result.promptTokenIds };
      } catch (err) {
        const e = err instanceof GenerationError ? err : new GenerationError(ErrorCode.Internal, String(err), { generatorFault: false, cause: err });
        lease.release(e.generatorFault ? 'generator_fault' : 'other');
        stats.request(lease.id, statusLabel(e), 0, clock.now() - started);
        if (signal.aborted) throw e;
        lastError = e;
        if (!e.retryable) throw e;
        if (attempt + 1 >= this.retry.maxAttempts) break; // giving up: no point in waiting first
        const delay = Math.max(e.retryAfterMs ?? 0, fullJitterDelayMs(attempt, this.retry.backoffBaseMs, this.retry.backoffCapMs, this.deps.random));
        log.debug({ generator: lease.id, attempt, completion: index, delayMs: delay, reason: e.message }, 'completion attempt failed; retrying');
        await clock.sleep(delay, signal);
      }
    }
    throw new TandemError(ErrorCode.Unavailable, `generation failed after ${this.retry.maxAttempts} attempts: ${lastError?.message ?? 'unknown'}`);
  }

  private async score(job: PromptJob, completions: GeneratedCompletion[], signal: AbortSignal): Promise<Reward[]> {
    let lastError: TandemError | undefined;
    for (let attempt = 0; attempt < this.retry.rewardAttempts; attempt++) {
      try {
        const rewards = await this.deps.reward.score(
          { prompt: job.prompt, ...(job.answer === undefined ? {} : { answer: job.answer }), completions: completions.map((c) => c.text) },
          signal,
        );
        if (rewards.length !== completions.length || rewards.some((r) => r !== null && !Number.isFinite(r))) {
          throw new TandemError(ErrorCode.InvalidArgument, `reward ${this.deps.reward.name} returned ${rewards.length} values, not ${completions.length} finite numbers or null`);
        }
        return rewards;
      } catch (err) {
        lastError = TandemError.from(err);
        if (!lastError.retryable || signal.aborted) throw lastError;
        await this.deps.clock.sleep(fullJitterDelayMs(attempt, this.retry.backoffBaseMs, this.retry.backoffCapMs, this.deps.random), signal);
      }
    }
    throw lastError ?? new TandemError(ErrorCode.Internal, 'reward failed');
  }
}

function statusLabel(e: TandemError): string {
  if (e.code === ErrorCode.ResourceExhausted) return '429';
  if (e.message.startsWith('malformed')) return 'malformed';
  if (e.message.includes('timed out')) return 'timeout';
  if (e.code === ErrorCode.Cancelled) return 'cancelled';
  return 'error';
}
