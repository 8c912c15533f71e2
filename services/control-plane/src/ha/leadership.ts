import { TandemError, type Clock, type Logger } from '@tandem/common';
import { RunRecordStore, TERMINAL_PHASES, type RolloutStore } from '@tandem/rollout-queue';
import type { LeaderGate } from './leader-gate.js';
import { RedisLeaderElector, type RedisLeaderElectorOptions } from './redis-leader-elector.js';
import type { LeaderAddresses, LeaderInfo, RedisLeaderLock } from './redis-leader-lock.js';

/** What a takeover did, for logs, the failover benchmark and tests. */
export interface Takeover {
  token: number;
  /** When this replica got the lock (clock ms). */
  acquiredAtMs: number;
  /** When admission, syncs and workloads of every open run were running again. */
  resumedAtMs: number;
  /** Open runs whose fence now holds this replica's token. */
  runs: string[];
}

/** The leader work a replica starts on winning the lock and stops on losing it. */
export interface LeaderWork {
  /** Resumes admission and workloads of every open run; returns how many. */
  resumeRuns(): Promise<number>;
  /** Resumes weight syncs of open runs. */
  resumeSyncs(): Promise<void>;
  /** Stops admitters, weight syncs, trainer sessions and local processes (the runs stay open in Redis). */
  stopAll(): Promise<void>;
}

/** Collaborators of {@link Leadership}. */
export interface LeadershipDeps {
  lock: RedisLeaderLock;
  store: RolloutStore;
  keyPrefix: string;
  work: LeaderWork;
  clock: Clock;
  log: Logger;
  /** Timing and identity of the election (the callbacks are Leadership's). */
  election: Omit<RedisLeaderElectorOptions, 'lock' | 'clock' | 'log' | 'onStartedLeading' | 'onStoppedLeading'>;
  /** Called after each takeover. */
  onTakeover?: (takeover: Takeover) => void;
}

/**
 * A replica's part in leader election (TANDEM_LEADER_ELECTION=redis): runs
 * the elector and turns winning and losing the lock into starting and
 * stopping leader work, one transition at a time.
 *
 * Taking over: first every open run's fence is raised to the new token, so
 * that from then on nothing the previous leader still sends (a paused
 * process that wakes up) changes those runs; then weight syncs, admitters
 * and the runs' local processes resume from Redis (the trainer resumes at
 * its acked step: the welcome names it). Losing the lock stops all of it.
 */
export class Leadership implements LeaderGate {
  readonly elector: RedisLeaderElector;
  private readonly d: LeadershipDeps;
  private readonly records: RunRecordStore;
  private transitions: Promise<void> = Promise.resolve();
  private working = false;
  private last: Takeover | undefined;

  constructor(deps: LeadershipDeps) {
    this.d = deps;
    this.records = new RunRecordStore(deps.store.redis, deps.keyPrefix);
    this.elector = new RedisLeaderElector({
      ...deps.election,
      lock: deps.lock,
      clock: deps.clock,
      log: deps.log,
      onStartedLeading: (token, signal) => this.transition(() => this.lead(token, signal)),
      onStoppedLeading: (why) => this.transition(() => this.follow(why)),
    });
  }

  isLeader(): boolean {
    return this.elector.isLeader();
  }

  leader(): Promise<LeaderInfo | undefined> {
    return this.d.lock.leader();
  }

  /** The last takeover by this replica. */
  lastTakeover(): Takeover | undefined {
    return this.last;
  }

  /** Starts campaigning with the addresses to advertise. */
  start(addresses: LeaderAddresses): void {
    this.elector.start(addresses);
  }

  /** Stops campaigning and leader work; a clean stop releases the lock. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    await this.elector.stop(options);
    await this.idle();
  }

  /** Resolves when no transition is under way (tests). */
  async idle(): Promise<void> {
    let seen: Promise<void> | undefined;
    while (seen !== this.transitions) {
      seen = this.transitions;
      await seen;
    }
  }

  private transition(fn: () => Promise<void>): void {
    this.transitions = this.transitions.then(fn).catch((err: unknown) => this.d.log.error({ err }, 'leadership transition failed'));
  }

  private async lead(token: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    const acquiredAtMs = this.d.clock.now();
    const runs: string[] = [];
    for (const id of await this.records.ids()) {
      if (signal.aborted) return;
      const record = await this.records.get(id);
      if (!record || TERMINAL_PHASES.has(record.phase)) continue;
      try {
        await this.d.store.forRun(id).raiseFence(token);
        runs.push(id);
      } catch (err) {
        // FENCED: a newer leader has it (this replica is about to learn it
        // lost the lock); NOT_FOUND: the run's queue is gone. Either way it
        // is not this replica's to resume.
        this.d.log.warn({ runId: id, token, err: TandemError.from(err).message }, 'run not taken over');
      }
    }
    if (signal.aborted) return;
    this.working = true;
    await this.d.work.resumeSyncs();
    if (signal.aborted) return;
    const resumed = await this.d.work.resumeRuns();
    const takeover: Takeover = { token, acquiredAtMs, resumedAtMs: this.d.clock.now(), runs };
    this.last = takeover;
    this.d.log.info({ token, runs: runs.length, resumedRuns: resumed, takeoverMs: takeover.resumedAtMs - acquiredAtMs }, 'leading: open runs taken over');
    this.d.onTakeover?.(takeover);
  }

  private async follow(why: string): Promise<void> {
    if (!this.working) return;
    this.working = false;
    await this.d.work.stopAll();
    this.d.log.warn({ why }, 'standing by: leader work stopped');
  }
}
