import type { Prng } from './prng.js';

/** Roles of a run's local processes that a scenario can kill. */
export type ProcessRole = 'rollout-worker' | 'generator' | 'trainer';

/** One live process of the run. */
export interface ChaosProcess {
  name: string;
  pid: number;
  /** SIGKILL: no cleanup, no flush, like an OOM kill or a lost node. */
  kill(): void;
}

/**
 * What a scenario can act on. The harness (run-chaos.ts) provides it for
 * the scenario's own Redis, control plane and run; a scenario that needs
 * another target (e.g. a standby control plane) adds it here and to the
 * harness.
 */
export interface ChaosTargets {
  /** The run's live processes of one role. */
  processes(role: ProcessRole): ChaosProcess[];
  /** Stops Redis (SIGTERM, AOF flushed), waits `pauseMs`, starts it again on the same port and data. */
  restartRedis(pauseMs: number): Promise<void>;
  /**
   * SIGKILL the control-plane leader and wait until the standby leads;
   * returns a line saying what happened. Only where the scenario runs
   * replicas (`controlPlane: 'replicas'`).
   */
  killLeader(): Promise<string>;
}

/** One fault, injected at a seeded moment of the run. */
export interface ChaosScenario {
  /** Short name, used by `--scenario` and in the table. */
  name: string;
  /** What is done to the run, for `--help` and the docs. */
  description: string;
  /**
   * How the control plane runs: in the suite's own process (default), or
   * as two replica processes with leader election over Redis, one leading
   * and one standing by.
   */
  controlPlane?: 'in-process' | 'replicas';
  /** Injects one fault; returns a line saying what was done. */
  inject(targets: ChaosTargets, random: Prng): Promise<string>;
}

function killOne(role: ProcessRole): ChaosScenario['inject'] {
  return async (targets, random) => {
    const live = targets.processes(role);
    if (live.length === 0) return `no live ${role} to kill`;
    const victim = random.pick(live);
    victim.kill();
    return `SIGKILL ${victim.name} (pid ${victim.pid})`;
  };
}

/**
 * Every scenario of the suite, in the order they run. Adding one is adding
 * an entry (and, if it needs a new kind of target, a method of
 * {@link ChaosTargets}).
 */
export const CHAOS_SCENARIOS: readonly ChaosScenario[] = [
  {
    name: 'kill-rollout-worker',
    description: 'kill -9 one rollout worker; its BullMQ jobs stall and another worker (or its restart) takes them',
    inject: killOne('rollout-worker'),
  },
  {
    name: 'kill-generator',
    description: 'kill -9 one simulated vLLM generator; its requests fail over, it restarts and rejoins at the next weight sync',
    inject: killOne('generator'),
  },
  {
    name: 'kill-trainer',
    description: 'kill -9 the trainer; the restarted trainer resumes from its checkpoint and is served the un-acked batch again',
    inject: killOne('trainer'),
  },
  {
    name: 'restart-redis',
    description: 'stop Redis (SIGTERM, AOF with appendfsync everysec) and start it again on the same port after a pause',
    inject: async (targets, random) => {
      const pauseMs = random.int(300, 1500);
      await targets.restartRedis(pauseMs);
      return `restarted Redis after ${pauseMs} ms down`;
    },
  },
  {
    name: 'redis-outage',
    description:
      'stop Redis for 12-15 s, longer than a client retries one command (ioredis: 20 reconnects, about 10 s), so commands fail; every component must retry, none may give up',
    inject: async (targets, random) => {
      const pauseMs = random.int(12_000, 15_000);
      await targets.restartRedis(pauseMs);
      return `restarted Redis after ${pauseMs} ms down`;
    },
  },
  {
    name: 'kill-leader',
    description:
      'two control-plane replicas (leader election over Redis, 2 s lease): SIGKILL the leader (its run processes die with it); the standby takes the run over and restarts its processes; a fresh standby is started while faults remain',
    controlPlane: 'replicas',
    inject: (targets) => targets.killLeader(),
  },
];

/** The scenarios named, in suite order; throws naming an unknown one. */
export function selectScenarios(names: readonly string[]): ChaosScenario[] {
  if (names.length === 0) return [...CHAOS_SCENARIOS];
  const known = new Map(CHAOS_SCENARIOS.map((s) => [s.name, s]));
  for (const n of names) {
    if (!known.has(n)) throw new Error(`unknown scenario '${n}' (known: ${[...known.keys()].join(', ')})`);
  }
  return CHAOS_SCENARIOS.filter((s) => names.includes(s.name));
}
