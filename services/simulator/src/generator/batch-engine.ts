import type { Clock, Logger } from '@tandem/common';
import { silentLogger } from '@tandem/common';
import type { ThroughputConfig } from './config.js';
import type { CompletionPlan, FinishReason } from './sampler.js';
import { perSequenceDecodeTokensPerSecond, prefillSeconds, aggregateDecodeTokensPerSecond } from './throughput-model.js';

/**
 * A fluid simulation of vLLM's continuous batching for one replica.
 *
 * Sequences wait for a slot (at most `maxNumSeqs` run), prefill, then decode;
 * all decoding sequences advance at the common rate given by the throughput
 * model for the current batch size. Between two events (a prefill ending, a
 * sequence finishing, an arrival, a pause, a version change) the batch is
 * constant, so progress is exact piecewise-linear: the engine sleeps on the
 * injected clock until the next event and, when it wakes (late or early),
 * replays everything that happened in between. A test with a manual clock
 * therefore controls generation completely and never sleeps.
 *
 * Every token records the policy version in effect when it was produced;
 * a state change (pause, weight update finishing) must go through
 * {@link BatchEngine.transition} so progress up to that instant is booked
 * under the old state.
 */

/** What may run: everything, only sequences already running, or nothing. */
export type Gate = 'open' | 'running-only' | 'closed';

/** How a sequence ended, with everything it produced. */
export interface SequenceResult {
  tokenIds: number[];
  logprobs: number[];
  finishReason: FinishReason;
  /** Oldest policy version over the produced tokens; null when none were produced. */
  minPolicyVersion: number | null;
  /** Newest policy version over the produced tokens; null when none were produced. */
  maxPolicyVersion: number | null;
  /** Clock ms spent waiting for a slot, and from submission to the end. */
  queuedMs: number;
  totalMs: number;
}

/** Collaborators of the engine. */
export interface BatchEngineDeps {
  clock: Clock;
  /** The policy version tokens are produced with right now. */
  currentVersion: () => number;
  /** What may run right now (pause / weight-update state). */
  gate: () => Gate;
  logger?: Logger;
}

/** Engine options. */
export interface BatchEngineOptions {
  throughput: ThroughputConfig;
  /** Clock ms per simulated ms. */
  timeScale: number;
}

/** Counters for /tandem/stats. */
export interface BatchEngineStats {
  waiting: number;
  prefilling: number;
  decoding: number;
  completedSequences: number;
  abortedSequences: number;
  generatedTokens: number;
  /** Aggregate decode tokens/s (simulated) at the current batch size. */
  decodeTokensPerSecond: number;
  /**
   * Wall-clock seconds during which at least one sequence was prefilling or
   * decoding (time paused for a weight update is not busy): the generator's
   * utilisation numerator, like vLLM's `num_requests_running > 0`.
   */
  busySeconds: number;
}

interface Sequence {
  id: number;
  plan: CompletionPlan;
  state: 'waiting' | 'prefill' | 'decode';
  prefillRemainingS: number;
  /** Tokens produced, fractional while a token is in progress. */
  progress: number;
  produced: number;
  minVersion: number | null;
  maxVersion: number | null;
  submittedAtMs: number;
  admittedAtMs: number | null;
  resolve: (r: SequenceResult) => void;
}

/** Below this, a remainder of tokens or seconds is rounding noise. */
const EPS = 1e-9;

/**
 * Events due sooner than this many clock ms are processed at once rather
 * than timed: an epoch-ms clock near 1.7e12 cannot represent smaller steps
 * (double precision is ~2e-4 ms there), so a timer that short would fire at
 * the same `now` forever. The time distortion is at most 1 µs per event.
 */
const MIN_TIMER_MS = 1e-3;

/** The continuous-batching engine of one simulated replica. */
export class BatchEngine {
  private readonly seqs = new Map<number, Sequence>();
  private readonly idleWaiters: Array<() => void> = [];
  private nextId = 1;
  private lastMs: number | null = null;
  private timer: AbortController | null = null;
  private closed = false;
  private completed = 0;
  private aborted = 0;
  private tokens = 0;
  private busyMs = 0;
  private readonly log: Logger;

  constructor(
    private readonly options: BatchEngineOptions,
    private readonly deps: BatchEngineDeps,
  ) {
    this.log = deps.logger ?? silentLogger();
  }

  /** Queues a sequence; the promise settles when it finishes or is aborted. */
  submit(plan: CompletionPlan, promptTokens: number): { id: number; result: Promise<SequenceResult> } {
    this.sync();
    const id = this.nextId++;
    const result = new Promise<SequenceResult>((resolve) => {
      this.seqs.set(id, {
        id,
        plan,
        state: 'waiting',
        prefillRemainingS: prefillSeconds(promptTokens, this.options.throughput),
        progress: 0,
        produced: 0,
        minVersion: null,
        maxVersion: null,
        submittedAtMs: this.deps.clock.now(),
        admittedAtMs: null,
        resolve,
      });
    });
    this.reschedule();
    return { id, result };
  }

  /**
   * Runs `change` (a pause, resume or version change) at the current
   * instant: progress so far is booked under the old state first.
   */
  transition<T>(change: () => T): T {
    this.sync();
    try {
      return change();
    } finally {
      this.reschedule();
    }
  }

  /** Ends one sequence early (client went away) with finish reason `abort`. */
  cancel(id: number): void {
    this.sync();
    const seq = this.seqs.get(id);
    if (seq) this.finish(seq, 'abort');
    this.reschedule();
  }

  /** Ends every sequence with finish reason `abort` (vLLM `/pause?mode=abort`). */
  abortAll(): number {
    this.sync();
    const all = [...this.seqs.values()];
    for (const seq of all) this.finish(seq, 'abort');
    this.reschedule();
    return all.length;
  }

  /** Resolves once no sequence is prefilling or decoding (waiting ones may remain). */
  whenRunningDrained(): Promise<void> {
    if (this.runningCount() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Current counters. */
  stats(): BatchEngineStats {
    this.sync();
    let waiting = 0;
    let prefilling = 0;
    let decoding = 0;
    for (const s of this.seqs.values()) {
      if (s.state === 'waiting') waiting++;
      else if (s.state === 'prefill') prefilling++;
      else decoding++;
    }
    return {
      waiting,
      prefilling,
      decoding,
      completedSequences: this.completed,
      abortedSequences: this.aborted,
      generatedTokens: this.tokens,
      decodeTokensPerSecond: aggregateDecodeTokensPerSecond(decoding, this.options.throughput),
      busySeconds: this.busyMs / 1000,
    };
  }

  /** Stops the timer and aborts everything still in flight. */
  close(): void {
    this.abortAll();
    this.closed = true;
    this.timer?.abort();
    this.timer = null;
  }

  private runningCount(): number {
    let n = 0;
    for (const s of this.seqs.values()) if (s.state !== 'waiting') n++;
    return n;
  }

  /** Brings the simulation up to the clock's now. */
  private sync(): void {
    const now = this.deps.clock.now();
    if (this.lastMs === null || now <= this.lastMs) {
      this.lastMs = Math.max(now, this.lastMs ?? now);
      return;
    }
    // sync() runs at every event, so the running set is constant enough
    // over one interval to attribute it as busy or idle.
    if (this.runningCount() > 0 && this.deps.gate() !== 'closed') this.busyMs += now - this.lastMs;
    let remainingS = (now - this.lastMs) / 1000 / this.options.timeScale;
    this.lastMs = now;
    // Each pass runs until the next event inside the interval, so the batch
    // size is constant within a pass. Bounded: every pass either consumes the
    // rest of the interval or ends a prefill or a sequence.
    while (remainingS > EPS) {
      const gate = this.deps.gate();
      if (gate === 'closed') return;
      if (gate === 'open') this.admit();
      const { stepS, rate } = this.nextEvent();
      if (stepS === Infinity) return;
      const step = Math.min(stepS, remainingS);
      this.apply(step, rate);
      remainingS -= step;
    }
    this.processDueEvents();
  }

  /** Processes events closer than {@link MIN_TIMER_MS} without waiting for the clock. */
  private processDueEvents(): void {
    // Bounded: each pass ends a prefill or a sequence, or returns.
    for (;;) {
      const gate = this.deps.gate();
      if (gate === 'closed') return;
      if (gate === 'open') this.admit();
      const { stepS, rate } = this.nextEvent();
      if (stepS === Infinity || stepS * 1000 * this.options.timeScale >= MIN_TIMER_MS) return;
      this.apply(stepS, rate);
    }
  }

  /** Moves waiting sequences into free slots, oldest first. */
  private admit(): void {
    let running = this.runningCount();
    if (running >= this.options.throughput.maxNumSeqs) return;
    for (const seq of this.seqs.values()) {
      if (running >= this.options.throughput.maxNumSeqs) break;
      if (seq.state !== 'waiting') continue;
      seq.state = seq.prefillRemainingS > EPS ? 'prefill' : 'decode';
      seq.admittedAtMs = this.lastMs ?? this.deps.clock.now();
      running++;
    }
  }

  /** Simulated seconds to the next prefill end or token boundary that ends a sequence. */
  private nextEvent(): { stepS: number; rate: number } {
    let decoding = 0;
    for (const s of this.seqs.values()) if (s.state === 'decode') decoding++;
    const rate = perSequenceDecodeTokensPerSecond(decoding, this.options.throughput);
    let stepS = Infinity;
    for (const s of this.seqs.values()) {
      if (s.state === 'prefill') stepS = Math.min(stepS, s.prefillRemainingS);
      else if (s.state === 'decode') stepS = Math.min(stepS, Math.max(0, s.plan.tokenIds.length - s.progress) / rate);
    }
    return { stepS, rate };
  }

  private apply(stepS: number, rate: number): void {
    const version = this.deps.currentVersion();
    const finished: Sequence[] = [];
    const promoted: Sequence[] = [];
    for (const seq of this.seqs.values()) {
      if (seq.state === 'prefill') {
        seq.prefillRemainingS -= stepS;
        if (seq.prefillRemainingS <= EPS) promoted.push(seq);
      } else if (seq.state === 'decode') {
        const target = seq.plan.tokenIds.length;
        seq.progress = Math.min(target, seq.progress + stepS * rate);
        const produced = Math.min(target, Math.floor(seq.progress + EPS));
        if (produced > seq.produced) {
          this.tokens += produced - seq.produced;
          seq.produced = produced;
          seq.minVersion = seq.minVersion === null ? version : Math.min(seq.minVersion, version);
          seq.maxVersion = seq.maxVersion === null ? version : Math.max(seq.maxVersion, version);
        }
        if (seq.produced >= target) finished.push(seq);
      }
    }
    // Promote after the pass so a sequence leaving prefill starts decoding
    // at the next event, with the batch size recomputed.
    for (const seq of promoted) {
      seq.prefillRemainingS = 0;
      seq.state = 'decode';
    }
    for (const seq of finished) this.finish(seq, seq.plan.finishReason);
  }

  private finish(seq: Sequence, reason: FinishReason): void {
    this.seqs.delete(seq.id);
    if (reason === 'abort') this.aborted++;
    else this.completed++;
    const now = this.lastMs ?? this.deps.clock.now();
    seq.resolve({
      tokenIds: seq.plan.tokenIds.slice(0, seq.produced),
      logprobs: seq.plan.logprobs.slice(0, seq.produced),
      finishReason: reason,
      minPolicyVersion: seq.minVersion,
      maxPolicyVersion: seq.maxVersion,
      queuedMs: (seq.admittedAtMs ?? now) - seq.submittedAtMs,
      totalMs: now - seq.submittedAtMs,
    });
    if (this.runningCount() === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Arms one timer for the next event, replacing any earlier one. */
  private reschedule(): void {
    if (this.closed) return;
    this.timer?.abort();
    this.timer = null;
    if (this.runningCount() === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
    this.processDueEvents();
    if (this.deps.gate() === 'closed' || this.seqs.size === 0) return;
    const { stepS } = this.nextEvent();
    if (stepS === Infinity) return;
    const ms = Math.max(0, stepS * 1000 * this.options.timeScale);
    const timer = new AbortController();
    this.timer = timer;
    this.deps.clock.sleep(ms, timer.signal).then(
      () => {
        if (timer.signal.aborted || this.closed) return;
        this.timer = null;
        this.sync();
        this.reschedule();
      },
      (err: unknown) => {
        // Aborted by a newer reschedule: expected. Anything else is a clock bug.
        if (!timer.signal.aborted) this.log.error({ err }, 'batch engine timer failed');
      },
    );
  }
}
