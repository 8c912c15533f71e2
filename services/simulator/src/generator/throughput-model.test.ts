import { describe, expect, it } from 'vitest';
import { BatchEngine } from './batch-engine.js';
import type { Gate, SequenceResult } from './batch-engine.js';
import { ThroughputOptionsSchema } from './config.js';
import { ManualClock, settle } from './manual-clock.js';
import type { CompletionPlan } from './sampler.js';
import {
  aggregateDecodeTokensPerSecond,
  isolatedRequestSeconds,
  perSequenceDecodeTokensPerSecond,
  prefillSeconds,
  saturatedDecodeTokensPerSecond,
  transferSeconds,
} from './throughput-model.js';

const throughput = ThroughputOptionsSchema.parse({
  peakTokensPerSecondPerSequence: 60,
  concurrencyKnee: 32,
  prefillTokensPerSecond: 1000,
  maxNumSeqs: 256,
});

describe('throughput model', () => {
  it('runs a lone sequence at peak speed and halves per-sequence speed past the knee', () => {
    expect(perSequenceDecodeTokensPerSecond(1, throughput)).toBe(60);
    expect(perSequenceDecodeTokensPerSecond(33, throughput)).toBeCloseTo(30, 10);
    expect(perSequenceDecodeTokensPerSecond(0, throughput)).toBe(60);
  });

  it('has an aggregate that grows with concurrency and saturates below peak × knee', () => {
    let previous = 0;
    for (const c of [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 8192]) {
      const agg = aggregateDecodeTokensPerSecond(c, throughput);
      expect(agg).toBeGreaterThan(previous);
      expect(agg).toBeLessThan(saturatedDecodeTokensPerSecond(throughput));
      previous = agg;
    }
    expect(aggregateDecodeTokensPerSecond(8192, throughput) / saturatedDecodeTokensPerSecond(throughput)).toBeGreaterThan(0.99);
    expect(aggregateDecodeTokensPerSecond(0, throughput)).toBe(0);
  });

  it('makes prefill proportional to prompt length and transfers proportional to bytes', () => {
    expect(prefillSeconds(500, throughput)).toBeCloseTo(0.5, 12);
    expect(prefillSeconds(1000, throughput)).toBeCloseTo(2 * prefillSeconds(500, throughput), 12);
    expect(transferSeconds(2e9, 1e9)).toBe(2);
    expect(isolatedRequestSeconds(1000, 60, throughput)).toBeCloseTo(2, 12);
  });
});

function plan(tokens: number): CompletionPlan {
  return {
    tokenIds: Array.from({ length: tokens }, (_, i) => 1000 + i),
    logprobs: Array.from({ length: tokens }, () => -0.5),
    finishReason: 'length',
  };
}

function harness(options: { maxNumSeqs?: number; knee?: number; timeScale?: number } = {}) {
  const clock = new ManualClock(0);
  let version = 0;
  let gate: Gate = 'open';
  const engine = new BatchEngine(
    {
      throughput: ThroughputOptionsSchema.parse({
        peakTokensPerSecondPerSequence: 60,
        concurrencyKnee: options.knee ?? 1_000_000,
        prefillTokensPerSecond: 1000,
        maxNumSeqs: options.maxNumSeqs ?? 256,
      }),
      timeScale: options.timeScale ?? 1,
    },
    { clock, currentVersion: () => version, gate: () => gate },
  );
  return {
    clock,
    engine,
    setVersion: (v: number) => engine.transition(() => (version = v)),
    setGate: (g: Gate) => engine.transition(() => (gate = g)),
  };
}

/** Tracks whether a promise settled, without awaiting it. */
function track(p: Promise<SequenceResult>): { value: SequenceResult | null } {
  const box: { value: SequenceResult | null } = { value: null };
  void p.then((v) => (box.value = v));
  return box;
}

describe('batch engine (manual clock, no real sleeps)', () => {
  it('finishes a lone 60-token sequence after exactly one simulated second', async () => {
    const { clock, engine } = harness();
    const r = track(engine.submit(plan(60), 0).result);
    await clock.advance(999);
    expect(r.value).toBeNull();
    expect(engine.stats().generatedTokens).toBe(59);
    await clock.advance(1);
    expect(r.value?.tokenIds).toHaveLength(60);
    expect(r.value?.finishReason).toBe('length');
    expect(r.value?.totalMs).toBe(1000);
  });

  it('adds prefill time proportional to the prompt', async () => {
    const { clock, engine } = harness();
    const r = track(engine.submit(plan(60), 500).result); // 0.5 s prefill at 1000 tok/s
    await clock.advance(1499);
    expect(r.value).toBeNull();
    await clock.advance(1);
    expect(r.value?.totalMs).toBe(1500);
  });

  it('slows every sequence down when the batch grows', async () => {
    const { clock, engine } = harness({ knee: 1 }); // perSequence(2) = 60 / 2
    const a = track(engine.submit(plan(60), 0).result);
    const b = track(engine.submit(plan(60), 0).result);
    await clock.advance(1999);
    expect(a.value).toBeNull();
    await clock.advance(1);
    expect(a.value?.totalMs).toBe(2000);
    expect(b.value?.totalMs).toBe(2000);
  });

  it('speeds the survivor up when a batch-mate finishes', async () => {
    const { clock, engine } = harness({ knee: 1 });
    const short = track(engine.submit(plan(30), 0).result); // 30 tokens at 30 tok/s = 1 s
    const long = track(engine.submit(plan(60), 0).result); // 30 tokens in 1 s, then 30 at 60 tok/s
    await clock.advance(1000);
    expect(short.value?.totalMs).toBe(1000);
    await clock.advance(500);
    expect(long.value?.totalMs).toBe(1500);
  });

  it('queues sequences beyond maxNumSeqs (continuous batching admits on free slots)', async () => {
    const { clock, engine } = harness({ maxNumSeqs: 1 });
    const first = track(engine.submit(plan(60), 0).result);
    const second = track(engine.submit(plan(60), 0).result);
    expect(engine.stats()).toMatchObject({ waiting: 1, decoding: 1 });
    await clock.advance(2000);
    expect(first.value?.queuedMs).toBe(0);
    expect(second.value?.queuedMs).toBe(1000);
    expect(second.value?.totalMs).toBe(2000);
  });

  it('makes no progress while the gate is closed and resumes where it stopped', async () => {
    const { clock, engine, setGate } = harness();
    const r = track(engine.submit(plan(60), 0).result);
    await clock.advance(500);
    setGate('closed');
    await clock.advance(10_000);
    expect(engine.stats().generatedTokens).toBe(30);
    setGate('open');
    await clock.advance(499);
    expect(r.value).toBeNull();
    await clock.advance(1);
    expect(r.value?.totalMs).toBe(11_000);
  });

  it('does not admit new sequences when only running ones may continue', async () => {
    const { clock, engine, setGate } = harness();
    const running = track(engine.submit(plan(60), 0).result);
    setGate('running-only');
    const late = track(engine.submit(plan(60), 0).result);
    await clock.advance(5000);
    expect(running.value?.tokenIds).toHaveLength(60);
    expect(late.value).toBeNull();
    expect(engine.stats().waiting).toBe(1);
    setGate('open');
    await clock.advance(1000);
    expect(late.value?.tokenIds).toHaveLength(60);
  });

  it('stamps tokens with the version in effect when they were produced', async () => {
    const { clock, engine, setVersion } = harness();
    const before = track(engine.submit(plan(60), 0).result);
    await clock.advance(500);
    setVersion(1);
    const after = track(engine.submit(plan(10), 0).result);
    await clock.advance(1000);
    expect(before.value).toMatchObject({ minPolicyVersion: 0, maxPolicyVersion: 1 });
    expect(after.value).toMatchObject({ minPolicyVersion: 1, maxPolicyVersion: 1 });
  });

  it('honours timeScale: 60 tokens take 10 ms of clock at timeScale 0.01', async () => {
    const { clock, engine } = harness({ timeScale: 0.01 });
    const r = track(engine.submit(plan(60), 0).result);
    await clock.advance(9);
    expect(r.value).toBeNull();
    await clock.advance(1);
    expect(r.value?.totalMs).toBe(10);
  });

  it('aborts everything with the tokens produced so far', async () => {
    const { clock, engine } = harness();
    const r = engine.submit(plan(60), 0).result;
    await clock.advance(250);
    expect(engine.abortAll()).toBe(1);
    const result = await r;
    expect(result.finishReason).toBe('abort');
    expect(result.tokenIds).toHaveLength(15);
    expect(result.logprobs).toHaveLength(15);
    await settle();
    expect(clock.pendingTimers).toBe(0);
  });

  it('keeps aggregate throughput saturating under heavy load', async () => {
    const { clock, engine } = harness({ knee: 8 });
    const results = Array.from({ length: 64 }, () => engine.submit(plan(60), 0).result);
    // 64 sequences: per-sequence 60 / (1 + 63/8) ≈ 6.76 tok/s → 60 tokens ≈ 8.875 s.
    await clock.advance(9000);
    const done = await Promise.all(results);
    expect(done.every((d) => d.totalMs === 8875)).toBe(true);
  });
});
