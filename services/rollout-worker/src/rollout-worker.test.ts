import { describe, expect, it } from 'vitest';
import { createLogger, silentLogger, type Clock } from '@tandem/common';
import { PromptGroup, unpackFloat32, unpackInt32 } from '@tandem/protocol';
import type { EncodedGroup, GeneratorRecord, PromptJob, RolloutQueue } from '@tandem/rollout-queue';
import { GeneratorPool } from './generator-pool.js';
import { RolloutWorker, type RolloutRetryPolicy } from './rollout-worker.js';
import type { RewardFunction } from './rewards/index.js';
import { WorkerStats } from './worker-stats.js';

/**
 * The worker's retry path with time and randomness injected: which delays
 * it sleeps (full jitter from `random`, Retry-After as a floor), when it
 * gives up, and that a rejected (malformed) answer is logged and retried
 * without ever reaching the queue. No real sleeping, no network.
 */

const job: PromptJob = { runId: 'r', groupId: 'g-1', promptId: '0', targetStep: 0, policyVersion: 0, prompt: 'What is 1 + 1?', answer: '2' };

const okBody = JSON.stringify({
  choices: [{ index: 0, text: ' 2', token_ids: [17, 2], logprobs: { token_logprobs: [-0.25, -0.5] }, finish_reason: 'stop' }],
});

type Answer = { status: number; body?: string; headers?: Record<string, string> };

/** A fetch that answers completions requests from a script, in order. */
function scriptedFetch(answers: Answer[]): { fetch: typeof fetch; calls: () => number } {
  let i = 0;
  const fake: typeof fetch = async () => {
    const a = answers[Math.min(i, answers.length - 1)] as Answer;
    i++;
    return new Response(a.body ?? JSON.stringify({ error: { message: `status ${a.status}` } }), { status: a.status, ...(a.headers ? { headers: a.headers } : {}) });
  };
  return { fetch: fake, calls: () => i };
}

/** A clock whose sleeps return at once and are recorded. */
function recordingClock(): Clock & { sleeps: number[] } {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
  };
}

/** The queue side the worker uses: `complete` and `fail`, recorded. */
function recordingQueue(): { queue: RolloutQueue; completed: EncodedGroup[]; failed: Array<{ groupId: string; reason: string }> } {
  const completed: EncodedGroup[] = [];
  const failed: Array<{ groupId: string; reason: string }> = [];
  const fake = {
    complete: async (group: EncodedGroup) => {
      completed.push(group);
      return { targetStep: 0, droppedStale: false };
    },
    fail: async (groupId: string, reason: string) => {
      failed.push({ groupId, reason });
    },
  };
  // The worker calls only complete() and fail(); the rest of RolloutQueue
  // needs Redis and is covered by the queue's own tests.
  return { queue: fake as unknown as RolloutQueue, completed, failed };
}

const reward: RewardFunction = { name: 'zero', score: async (input) => input.completions.map(() => 0) };

async function makeWorker(options: {
  fetch: typeof fetch;
  clock: Clock;
  random: () => number;
  retry?: Partial<RolloutRetryPolicy>;
  logLines?: string[];
  reward?: RewardFunction;
  /** The registry as the pool reads it (default: one ready generator) and whether it has changed since. */
  directory?: { list: () => GeneratorRecord[]; changed: () => boolean };
}) {
  const record: GeneratorRecord = { id: 'gen-0', url: 'http://gen-0', state: 'ready', policyVersion: 0, updatedAtMs: 0 };
  const directory = options.directory ?? { list: () => [record], changed: () => false };
  const pool = new GeneratorPool(
    {
      list: async () => directory.list(),
      nextChange: () => ({ promise: directory.changed() ? Promise.resolve() : new Promise<void>(() => undefined), cancel: () => undefined }),
    },
    // A generator fault never benches it here: these tests are about one generator's answers.
    { maxInFlightPerGenerator: 4, unhealthyAfterFailures: 1000, probeAfterMs: 1000, refreshMs: 1_000_000 },
    { clock: options.clock, log: silentLogger(), probe: async () => true },
  );
  await pool.refresh();
  const q = recordingQueue();
  const lines = options.logLines;
  const log = lines
    ? createLogger({ name: 'rollout-worker-test', level: 'debug', destination: { write: (s: string) => void lines.push(s) } })
    : silentLogger();
  // Counters are only accumulated here: flushing (Redis) is never started.
  const noRedis = { pipeline: () => { throw new Error('stats are not flushed in this test'); } };
  const stats = new WorkerStats(noRedis as unknown as ConstructorParameters<typeof WorkerStats>[0], 'stats', log);
  const worker = new RolloutWorker(
    { queue: q.queue, pool, reward: options.reward ?? reward, stats, clock: options.clock, log, random: options.random, fetch: options.fetch },
    { model: 'm', groupSize: 1, maxTokens: 16, temperature: 1, maxTrajectoryAgeSteps: 1 },
    { requestTimeoutMs: 1000, maxAttempts: 5, backoffBaseMs: 100, backoffCapMs: 250, rewardAttempts: 1, ...options.retry },
  );
  return { worker, ...q };
}

describe('rollout worker retry path', () => {
  it('backs off with full jitter drawn from the injected random, capped, with Retry-After as a floor', async () => {
    const clock = recordingClock();
    const draws = [0.5, 0.25, 0.999, 0.1];
    let d = 0;
    const random = (): number => draws[d++] as number;
    const script = scriptedFetch([
      { status: 429, headers: { 'retry-after': '0' } },
      { status: 429 },
      { status: 429 },
      { status: 429, headers: { 'retry-after': '2' } },
      { status: 200, body: okBody },
    ]);
    const { worker, completed, failed } = await makeWorker({ fetch: script.fetch, clock, random });
    expect(await worker.process(job, new AbortController().signal)).toBe('completed');
    // attempt n sleeps floor(random × min(cap 250, base 100 × 2^n)); a
    // Retry-After of 2 s outweighs the jitter (here 0.1 × 250 = 25 ms).
    expect(clock.sleeps).toEqual([Math.floor(0.5 * 100), Math.floor(0.25 * 200), Math.floor(0.999 * 250), 2000]);
    expect(script.calls()).toBe(5);
    expect(failed).toEqual([]);
    expect(completed).toHaveLength(1);
  });

  it('different draws spread the retries of requests that failed together', async () => {
    const delaysFor = async (r: number): Promise<number[]> => {
      const clock = recordingClock();
      const script = scriptedFetch([{ status: 429 }, { status: 429 }, { status: 200, body: okBody }]);
      const { worker } = await makeWorker({ fetch: script.fetch, clock, random: () => r });
      await worker.process(job, new AbortController().signal);
      return clock.sleeps;
    };
    expect(await delaysFor(0.1)).toEqual([10, 20]);
    expect(await delaysFor(0.9)).toEqual([90, 180]);
  });

  it('fails the group after maxAttempts, naming why, without sleeping after the last attempt', async () => {
    const clock = recordingClock();
    const script = scriptedFetch([{ status: 429 }]);
    const { worker, completed, failed } = await makeWorker({ fetch: script.fetch, clock, random: () => 0.5, retry: { maxAttempts: 3 } });
    expect(await worker.process(job, new AbortController().signal)).toBe('failed');
    expect(script.calls()).toBe(3);
    expect(clock.sleeps).toEqual([50, 100]);
    expect(completed).toEqual([]);
    expect(failed).toHaveLength(1);
    expect(failed[0]?.reason).toMatch(/^generation failed after 3 attempts: generator http:\/\/gen-0 answered 429/);
  });

  it('rejects a malformed answer with a logged reason and retries; only the valid completion is queued', async () => {
    const clock = recordingClock();
    const lines: string[] = [];
    const wrongCount = JSON.stringify({
      choices: [{ index: 0, text: ' 2', token_ids: [17, 2], logprobs: { token_logprobs: [-0.25] }, finish_reason: 'stop' }],
    });
    const script = scriptedFetch([
      { status: 200, body: okBody.slice(0, 20) },
      { status: 200, body: wrongCount },
      { status: 200, body: okBody },
    ]);
    const { worker, completed } = await makeWorker({ fetch: script.fetch, clock, random: () => 0.5, logLines: lines });
    expect(await worker.process(job, new AbortController().signal)).toBe('completed');
    const reasons = lines
      .map((l) => JSON.parse(l) as { msg: string; reason?: string })
      .filter((l) => l.msg === 'completion attempt failed; retrying')
      .map((l) => l.reason);
    expect(reasons).toEqual([
      'malformed response from http://gen-0: body is not valid JSON',
      'malformed response from http://gen-0: choice 0 has 2 tokens but 1 logprobs',
    ]);
    expect(completed).toHaveLength(1);
    const group = PromptGroup.decode((completed[0] as EncodedGroup).payload);
    expect(group.trajectories.map((t) => [Array.from(unpackInt32(t.tokenIds)), Array.from(unpackFloat32(t.logprobs))])).toEqual([[[17, 2], [-0.25, -0.5]]]);
  });
});

describe('rollout worker rewards', () => {
  it('queues a completion no reward function could score as unscored, with reward 0', async () => {
    const unscorable: RewardFunction = { name: 'remote', score: async () => [null] };
    const { worker, completed, failed } = await makeWorker({ fetch: scriptedFetch([{ status: 200, body: okBody }]).fetch, clock: recordingClock(), random: () => 0.5, reward: unscorable });
    expect(await worker.process(job, new AbortController().signal)).toBe('completed');
    expect(failed).toEqual([]);
    const group = PromptGroup.decode((completed[0] as EncodedGroup).payload);
    expect(group.trajectories.map((t) => [t.reward, t.unscored])).toEqual([[0, true]]);
  });

  it('generates again when the generator lost its weights during the request (failed or cut-off sync)', async () => {
    const ready: GeneratorRecord = { id: 'gen-0', url: 'http://gen-0', state: 'ready', policyVersion: 0, updatedAtMs: 0 };
    let phase: 'before' | 'lost' | 'restored' = 'before';
    const directory = {
      list: (): GeneratorRecord[] => {
        if (phase !== 'lost') return [ready];
        // Read once right after the first answer: the sync failed meanwhile.
        phase = 'restored';
        return [{ ...ready, state: 'joining', policyVersion: -1 }];
      },
      changed: () => phase === 'restored',
    };
    const script = scriptedFetch([
      { status: 200, body: okBody },
      { status: 200, body: okBody },
    ]);
    const fetchThenLose: typeof fetch = async (...args) => {
      const res = await script.fetch(...args);
      if (script.calls() === 1) phase = 'lost';
      return res;
    };
    const lines: string[] = [];
    const { worker, completed } = await makeWorker({ fetch: fetchThenLose, clock: recordingClock(), random: () => 0, directory, logLines: lines });
    expect(await worker.process(job, new AbortController().signal)).toBe('completed');
    expect(script.calls()).toBe(2);
    expect(completed).toHaveLength(1);
    const reasons = lines.map((l) => JSON.parse(l) as { msg: string; reason?: string }).filter((l) => l.msg === 'completion attempt failed; retrying');
    expect(reasons.map((l) => l.reason)).toEqual(['generator gen-0 lost its weights during the request (now joining); generating again']);
  });

  it('a scored completion is not marked', async () => {
    const scored: RewardFunction = { name: 'remote', score: async () => [0.75] };
    const { worker, completed } = await makeWorker({ fetch: scriptedFetch([{ status: 200, body: okBody }]).fetch, clock: recordingClock(), random: () => 0.5, reward: scored });
    expect(await worker.process(job, new AbortController().signal)).toBe('completed');
    const group = PromptGroup.decode((completed[0] as EncodedGroup).payload);
    expect(group.trajectories.map((t) => [t.reward, t.unscored])).toEqual([[0.75, false]]);
  });
});
