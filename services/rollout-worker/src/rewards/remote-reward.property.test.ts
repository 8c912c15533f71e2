import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TandemError, createLogger, type Clock } from '@tandem/common';
import { RolloutStore, type GeneratorRecord } from '@tandem/rollout-queue';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { GeneratorPool } from '../generator-pool.js';
import { RolloutWorker } from '../rollout-worker.js';
import { WorkerStats } from '../worker-stats.js';
import { MAX_ABS_REWARD, maxRewardResponseBytes, remoteReward } from './remote-reward.js';

/**
 * Seeded property tests of what a reward endpoint may answer: the wrong
 * number of rewards, non-numbers, NaN / Infinity literals, huge values,
 * malformed JSON, multi-MB bodies, error statuses, an answer that stops
 * half-way, no answer at all. `score` either returns one finite reward per
 * completion within ±MAX_ABS_REWARD or throws a TandemError saying what was
 * wrong (INVALID_ARGUMENT: the group fails; UNAVAILABLE: retried); through
 * a real worker and queue (real Redis), a group whose rewards cannot be had
 * ends `failed` in the ledger with the reason logged, and nothing else
 * changes.
 */

const G = 3;
const TIMEOUT_MS = 300;

interface Answer {
  status: number;
  /** Undefined: headers only, then silence (a hung endpoint). */
  body: string | undefined;
  /** Send this much of the body, then stall. */
  stallAfter?: number;
}

let server: Server;
let url: string;
let answer: Answer = { status: 200, body: '{"rewards":[1,2,3]}' };

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = answer;
      res.writeHead(a.status, { 'content-type': 'application/json' });
      if (a.body === undefined) return; // never answers
      if (a.stallAfter !== undefined) {
        res.write(a.body.slice(0, a.stallAfter)); // the rest never comes
        return;
      }
      res.end(a.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/reward`;
});

afterAll(() => {
  server?.closeAllConnections();
  server?.close();
});

const numberish = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -10, max: 10 }),
  fc.constantFrom(MAX_ABS_REWARD, -MAX_ABS_REWARD, 1e300, -1e300, 1e10),
  fc.constant(null),
);
const rewardsBody = fc.oneof(
  fc.array(numberish, { minLength: 0, maxLength: 2 * G }).map((r) => JSON.stringify({ rewards: r })),
  fc.array(numberish, { minLength: G, maxLength: G }).map((r) => JSON.stringify({ rewards: r })),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { minLength: G, maxLength: G }).map((r) => JSON.stringify({ rewards: r })),
  fc.constantFrom('NaN', 'Infinity', '-Infinity').map((lit) => `{"rewards":[0,${lit},1]}`),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 40 }),
  fc.constant(null).map(() => JSON.stringify({ rewards: [1, 2, 3], padding: 'p'.repeat(maxRewardResponseBytes(G) + 1) })),
);
const answers: fc.Arbitrary<Answer> = fc.oneof(
  { weight: 6, arbitrary: rewardsBody.map((body) => ({ status: 200, body })) },
  { weight: 1, arbitrary: fc.constantFrom(400, 404, 429, 500, 503).map((status) => ({ status, body: 'nope' })) },
  { weight: 1, arbitrary: fc.constant({ status: 200, body: undefined }) },
  { weight: 1, arbitrary: fc.nat({ max: 10 }).map((n) => ({ status: 200, body: '{"rewards":[1,2,3]}', stallAfter: n })) },
);

describe('reward endpoint answers (property)', () => {
  it('scores with one finite, bounded reward (or null: unscorable) per completion, or throws a TandemError saying why', async () => {
    const reward = remoteReward({ url, timeoutMs: TIMEOUT_MS, runId: 'r' });
    await fc.assert(
      fc.asyncProperty(answers, async (a) => {
        answer = a;
        let rewards: Array<number | null>;
        try {
          rewards = await reward.score({ prompt: 'p', answer: 'a', completions: ['x', 'y', 'z'] });
        } catch (err) {
          expect(err).toBeInstanceOf(TandemError);
          const e = err as TandemError;
          expect(['INVALID_ARGUMENT', 'UNAVAILABLE']).toContain(e.code);
          expect(e.message).toMatch(/^reward endpoint/);
          if (a.body === undefined || a.stallAfter !== undefined) expect(e.message).toContain(`timed out after ${TIMEOUT_MS} ms`);
          return;
        }
        expect(a.status).toBe(200);
        expect(rewards).toHaveLength(G);
        for (const r of rewards) {
          if (r === null) continue;
          expect(Number.isFinite(r)).toBe(true);
          expect(Math.abs(r)).toBeLessThanOrEqual(MAX_ABS_REWARD);
        }
        expect(rewards).toEqual((JSON.parse(a.body as string) as { rewards: Array<number | null> }).rewards);
      }),
      {
        numRuns: 120,
        seed: 1234,
        examples: [
          // Found by this property: a body that stalled after the headers
          // escaped as a raw AbortError (INTERNAL, not retried).
          [{ status: 200, body: '{"rewards":[1,2,3]}', stallAfter: 3 }],
          [{ status: 200, body: '{"rewards":[1e300,0,0]}' }],
        ],
      },
    );
  }, 60_000);

  it('names the limits it enforces', async () => {
    const reward = remoteReward({ url, timeoutMs: 2000, runId: 'r' });
    answer = { status: 200, body: '{"rewards":[0,1e300,0]}' };
    await expect(reward.score({ prompt: 'p', completions: ['a', 'b', 'c'] })).rejects.toThrow(`rewards[1] = 1e+300 exceeds the limit of ${MAX_ABS_REWARD} in magnitude (MAX_ABS_REWARD)`);
    answer = { status: 200, body: JSON.stringify({ rewards: [0, 0, 0], pad: 'p'.repeat(2 * 1024 * 1024) }) };
    await expect(reward.score({ prompt: 'p', completions: ['a', 'b', 'c'] })).rejects.toThrow(`exceeds the limit of ${maxRewardResponseBytes(3)} bytes (64 KiB + 64 bytes per completion)`);
  });
});

describe('reward failures through a worker and a real queue', () => {
  let redis: RedisServerHandle;
  let store: RolloutStore;
  let generator: Server;
  let generatorUrl: string;

  beforeAll(async () => {
    redis = await startRedisServer();
    store = await RolloutStore.create({ redisUrl: redis.url, keyPrefix: 'reward-prop' });
    const body = JSON.stringify({ choices: [{ text: ' 2', token_ids: [17, 2], logprobs: { token_logprobs: [-0.25, -0.5] }, finish_reason: 'stop' }] });
    generator = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(body));
    });
    await new Promise<void>((resolve) => generator.listen(0, '127.0.0.1', resolve));
    generatorUrl = `http://127.0.0.1:${(generator.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    generator?.close();
    await store?.close();
    await redis?.stop();
  });

  it('a group whose rewards cannot be had ends failed with the reason logged; a good answer completes it', async () => {
    let runSeq = 0;
    await fc.assert(
      fc.asyncProperty(answers, async (a) => {
        answer = a;
        const runId = `reward-${runSeq++}`;
        const queue = store.forRun(runId);
        await queue.init({ maxTrajectoryAgeSteps: 1, batchGroups: 1, capacityGroups: 4, maxSteps: 100 });
        let t = 0;
        const clock: Clock = { now: () => t, sleep: async (ms) => void (t += ms) };
        const lines: string[] = [];
        const log = createLogger({ name: 'reward-prop', level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
        const record: GeneratorRecord = { id: 'gen-0', url: generatorUrl, state: 'ready', policyVersion: 0, updatedAtMs: 0 };
        const pool = new GeneratorPool(
          { list: async () => [record], nextChange: () => ({ promise: new Promise<void>(() => undefined), cancel: () => undefined }) },
          { maxInFlightPerGenerator: 8, unhealthyAfterFailures: 1000, probeAfterMs: 1000, refreshMs: 1_000_000 },
          { clock, log, probe: async () => true },
        );
        await pool.refresh();
        const worker = new RolloutWorker(
          { queue, pool, reward: remoteReward({ url, timeoutMs: TIMEOUT_MS, runId }), stats: new WorkerStats(store.redis, `reward-prop:${runId}:stats`, log), clock, log, random: () => 0.5 },
          { model: 'm', groupSize: G, maxTokens: 16, temperature: 1, maxTrajectoryAgeSteps: 1 },
          { requestTimeoutMs: 5000, maxAttempts: 2, backoffBaseMs: 1, backoffCapMs: 2, rewardAttempts: 2 },
        );
        const admitted = await queue.admit({ timeoutMs: 5000 });
        if (admitted.kind !== 'admitted') throw new Error('not admitted');
        const ad = admitted.admission;
        const outcome = await worker.process(
          { runId, groupId: ad.groupId, promptId: ad.promptId, targetStep: ad.targetStep, policyVersion: ad.policyVersion, prompt: 'p', answer: '2' },
          new AbortController().signal,
        );
        const snap = await queue.snapshot();
        expect(snap.inFlight).toBe(0);
        if (outcome === 'completed') {
          expect(snap.queueDepth).toBe(1);
          expect(snap.ledger.failed).toBe(0);
        } else {
          expect(outcome).toBe('failed');
          expect(snap.ledger.failed).toBe(1);
          const failed = lines.map((l) => JSON.parse(l) as { msg: string; reason?: string }).filter((l) => l.msg === 'group failed for good');
          expect(failed).toHaveLength(1);
          expect(failed[0]?.reason).toMatch(/^reward endpoint/);
        }
        await queue.destroy();
      }),
      { numRuns: 40, seed: 4321 },
    );
  }, 60_000);
});
