import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createLogger, type Clock } from '@tandem/common';
import { PromptGroup, unpackFloat32, unpackInt32 } from '@tandem/protocol';
import { RolloutStore, type GeneratorRecord, type PromptJob, type RolloutQueue } from '@tandem/rollout-queue';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { GeneratorPool } from './generator-pool.js';
import { RolloutWorker } from './rollout-worker.js';
import type { RewardFunction } from './rewards/index.js';
import { maxCompletionsResponseBytes } from './vllm-client.js';
import { WorkerStats } from './worker-stats.js';

/**
 * Seeded property tests of what a generator may answer. A fake vLLM server
 * on loopback answers each completions request from a script: malformed
 * JSON, token ids and logprobs of different lengths, NaN / Infinity /
 * positive / null logprobs, token ids that are not int32, missing fields,
 * more tokens than max_tokens, multi-MB bodies, the wrong number of
 * choices, error statuses, and the occasional valid answer. A real rollout
 * worker takes admitted groups from a real queue (real Redis). Whatever the
 * script: a bad answer never reaches the queue; it is retried, and a group
 * whose attempts run out ends `failed` in the ledger with the reason
 * logged; a valid answer is stored exactly; the worker goes on with the
 * next group; every admitted group ends in the ledger.
 */

const MAX_TOKENS = 16;
const MAX_ATTEMPTS = 3;

interface Answer {
  status: number;
  body: string;
  /** What this answer is, for failure messages. */
  kind: string;
  valid: boolean;
}

const good = { text: ' 2', token_ids: [17, 2], logprobs: { token_logprobs: [-0.25, -0.5] }, finish_reason: 'stop' };
const goodAnswer: Answer = { status: 200, body: JSON.stringify({ choices: [good] }), kind: 'valid', valid: true };

const badChoice = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })).filter(([a, b]) => a !== b).map(([n, m]) => ({
    kind: 'token/logprob count mismatch',
    choice: { ...good, token_ids: new Array(n).fill(3), logprobs: { token_logprobs: new Array(m).fill(-1) } },
  })),
  fc.constantFrom(null, 0.5, 1e-9, 1e308, '-1', true).map((lp) => ({ kind: `logprob ${String(lp)}`, choice: { ...good, logprobs: { token_logprobs: [-0.1, lp] } } })),
  fc.constantFrom(1.5, -1, 2 ** 31, 2 ** 53, '7', null).map((id) => ({ kind: `token id ${String(id)}`, choice: { ...good, token_ids: [17, id] } })),
  fc.constantFrom('token_ids', 'logprobs').map((field) => {
    const { [field as 'token_ids']: _omit, ...rest } = good;
    return { kind: `missing ${field}`, choice: rest };
  }),
  fc.integer({ min: MAX_TOKENS + 1, max: 4 * MAX_TOKENS }).map((n) => ({
    kind: `${n} tokens > max_tokens`,
    choice: { ...good, token_ids: new Array(n).fill(5), logprobs: { token_logprobs: new Array(n).fill(-1) } },
  })),
);

const badAnswer: fc.Arbitrary<Answer> = fc.oneof(
  badChoice.map(({ kind, choice }) => ({ status: 200, body: JSON.stringify({ choices: [choice] }), kind, valid: false })),
  // Python's json module writes NaN and Infinity, which are not JSON.
  fc.constantFrom('NaN', 'Infinity', '-Infinity').map((lit) => ({ status: 200, body: JSON.stringify({ choices: [good] }).replace('-0.5', lit), kind: `logprob ${lit} literal`, valid: false })),
  fc.nat({ max: goodAnswer.body.length - 1 }).map((cut) => ({ status: 200, body: goodAnswer.body.slice(0, cut), kind: 'truncated JSON', valid: false })),
  fc.constantFrom('<html>502</html>', '', 'null', '[]', '{}', '{"choices": []}', '{"choices": {}}').map((body) => ({ status: 200, body, kind: `body ${body || '(empty)'}`, valid: false })),
  fc.constantFrom(0, 2, 3).map((n) => ({ status: 200, body: JSON.stringify({ choices: new Array(n).fill(good) }), kind: `${n} choices for n = 1`, valid: false })),
  fc.constant(null).map(() => ({
    status: 200,
    body: JSON.stringify({ choices: [{ ...good, text: 'x'.repeat(maxCompletionsResponseBytes(1, MAX_TOKENS) + 1) }] }),
    kind: 'multi-MB body',
    valid: false,
  })),
  fc.constantFrom(500, 502).map((status) => ({ status, body: 'upstream error', kind: `status ${status}`, valid: false })),
);

/** The answers a generator gives, in order; past the end, the last one again. */
const script = fc.array(fc.oneof({ weight: 4, arbitrary: badAnswer }, { weight: 1, arbitrary: fc.constant(goodAnswer) }), { minLength: 1, maxLength: 5 });

let redis: RedisServerHandle;
let store: RolloutStore;
let server: Server;
let baseUrl: string;
let answers: Answer[] = [];
let served = 0;
let runSeq = 0;

beforeAll(async () => {
  redis = await startRedisServer();
  store = await RolloutStore.create({ redisUrl: redis.url, keyPrefix: 'vllm-prop' });
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = answers[Math.min(served, answers.length - 1)] as Answer;
      served++;
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.close();
  await store?.close();
  await redis?.stop();
});

/** A clock whose sleeps return at once (backoff is not what is tested here). */
function instantClock(): Clock {
  let t = 1_000_000;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
    },
  };
}

const reward: RewardFunction = { name: 'zero', score: async (input) => input.completions.map(() => 0) };

async function setup(groupSize: number): Promise<{ queue: RolloutQueue; worker: RolloutWorker; lines: string[]; runId: string }> {
  const runId = `vllm-${runSeq++}`;
  const queue = store.forRun(runId);
  await queue.init({ maxTrajectoryAgeSteps: 1, batchGroups: 1, capacityGroups: 8, maxSteps: 1000 });
  const clock = instantClock();
  const lines: string[] = [];
  const log = createLogger({ name: 'vllm-prop', level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  const record: GeneratorRecord = { id: 'gen-0', url: baseUrl, state: 'ready', policyVersion: 0, updatedAtMs: 0 };
  const pool = new GeneratorPool(
    { list: async () => [record], nextChange: () => ({ promise: new Promise<void>(() => undefined), cancel: () => undefined }) },
    // Never benched: these properties are about one generator's answers.
    { maxInFlightPerGenerator: 8, unhealthyAfterFailures: 1000, probeAfterMs: 1000, refreshMs: 1_000_000 },
    { clock, log, probe: async () => true },
  );
  await pool.refresh();
  // Counters are only accumulated: flushing them to Redis is not started.
  const stats = new WorkerStats(store.redis, `vllm-prop:${runId}:stats`, log);
  const worker = new RolloutWorker(
    { queue, pool, reward, stats, clock, log, random: () => 0.5 },
    { model: 'm', groupSize, maxTokens: MAX_TOKENS, temperature: 1, maxTrajectoryAgeSteps: 1 },
    { requestTimeoutMs: 5000, maxAttempts: MAX_ATTEMPTS, backoffBaseMs: 1, backoffCapMs: 2, rewardAttempts: 1 },
  );
  return { queue, worker, lines, runId };
}

async function admitJob(queue: RolloutQueue, runId: string): Promise<PromptJob> {
  const attempt = await queue.admit({ timeoutMs: 5000 });
  if (attempt.kind !== 'admitted') throw new Error(`admission ended: ${attempt.kind}`);
  const a = attempt.admission;
  return { runId, groupId: a.groupId, promptId: a.promptId, targetStep: a.targetStep, policyVersion: a.policyVersion, prompt: 'What is 1 + 1?', answer: '2' };
}

function logged(lines: string[], msg: string): Array<Record<string, unknown>> {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);
}

describe('generator answers (property)', () => {
  it('a bad answer never reaches the queue: retried, then failed in the ledger with the reason logged; the worker goes on', async () => {
    await fc.assert(
      fc.asyncProperty(script, async (s) => {
        const { queue, worker, lines, runId } = await setup(1);
        answers = s;
        served = 0;
        const job = await admitJob(queue, runId);
        const outcome = await worker.process(job, new AbortController().signal);
        // Past the script's end the last answer repeats, so only the first MAX_ATTEMPTS matter.
        const firstValid = s.slice(0, MAX_ATTEMPTS).findIndex((a) => a.valid);
        const expectCompleted = firstValid >= 0;
        const kinds = s.map((a) => a.kind).join(', ');
        // A 4xx is not retried; none is scripted, so every failure is retried up to MAX_ATTEMPTS.
        expect(outcome, kinds).toBe(expectCompleted ? 'completed' : 'failed');
        const retried = logged(lines, 'completion attempt failed; retrying');
        for (const r of retried) expect(String(r.reason), kinds).toMatch(/malformed response|answered 50[02]/);
        const snap = await queue.snapshot();
        if (expectCompleted) {
          expect(snap.queueDepth).toBe(1);
          expect(snap.ledger.failed).toBe(0);
          const batch = await queue.serveBatch(0, { timeoutMs: 1000 });
          expect(batch.kind).toBe('ready');
          if (batch.kind !== 'ready') return;
          const group = PromptGroup.decode(batch.batch.payloads[0] as Buffer);
          const t = group.trajectories[0];
          expect(Array.from(unpackInt32(t?.tokenIds ?? new Uint8Array()))).toEqual(good.token_ids);
          expect(Array.from(unpackFloat32(t?.logprobs ?? new Uint8Array()))).toEqual(good.logprobs.token_logprobs);
          expect(retried.length).toBe(firstValid);
        } else {
          expect(snap.ledger.failed).toBe(1);
          expect(snap.queueDepth).toBe(0);
          const failed = logged(lines, 'group failed for good');
          expect(failed).toHaveLength(1);
          expect(String(failed[0]?.reason)).toMatch(new RegExp(`^generation failed after ${MAX_ATTEMPTS} attempts: (malformed response from|generator .* answered 50[02])`));
          expect(retried.length).toBe(MAX_ATTEMPTS - 1);
        }
        expect(snap.inFlight).toBe(0);

        // The worker goes on: the next group, answered well, completes.
        answers = [goodAnswer];
        served = 0;
        const next = await admitJob(queue, runId);
        expect(await worker.process(next, new AbortController().signal)).toBe('completed');
        const after = await queue.snapshot();
        const l = after.ledger;
        expect(l.admitted).toBe(2);
        expect(l.admitted).toBe(l.trained + l.failed + l.droppedStale + l.cancelled + after.inFlight + after.queueDepth + (expectCompleted ? 1 : 0));
        await queue.destroy();
      }),
      {
        numRuns: 60,
        seed: 8080,
        examples: [
          // Found by this property: ids past int32 were accepted and wrapped when packed.
          [[{ status: 200, body: JSON.stringify({ choices: [{ ...good, token_ids: [17, 2 ** 31] }] }), kind: 'token id 2^31', valid: false }]],
          // Found by this property: a body of any size was read whole and stored.
          [[{ status: 200, body: JSON.stringify({ choices: [{ ...good, text: 'y'.repeat(3 * 1024 * 1024) }] }), kind: '3 MB of text for 2 tokens', valid: false }]],
        ],
      },
    );
  }, 60_000);

  it('a group of several completions fails as a whole when one completion keeps getting garbage', async () => {
    const { queue, worker, lines, runId } = await setup(4);
    answers = [goodAnswer, goodAnswer, goodAnswer, { status: 200, body: '{"choices": [', kind: 'truncated', valid: false }];
    served = 0;
    const job = await admitJob(queue, runId);
    expect(await worker.process(job, new AbortController().signal)).toBe('failed');
    const snap = await queue.snapshot();
    expect(snap.ledger).toMatchObject({ admitted: 1, failed: 1 });
    expect(snap.queueDepth).toBe(0);
    expect(String(logged(lines, 'group failed for good')[0]?.reason)).toContain('malformed response from');
    await queue.destroy();
  });
});
