import { startControlPlaneReplica, type ControlPlaneReplica } from '@tandem/testkit';
import { descendants, reap, type SeenProcess } from './process-tree.js';

/** Leader lease and renew interval of the chaos replicas: short, so a failover fits in a quick run. */
export const CHAOS_LEADER_LEASE_MS = 2000;
export const CHAOS_LEADER_RENEW_MS = 500;
/** How long the standby may take to lead after the leader is killed. */
const TAKEOVER_LIMIT_MS = CHAOS_LEADER_LEASE_MS * 10;
/** How long a replica's processes may take to exit after it is gone, before they are SIGKILLed. */
const REAP_LIMIT_MS = 10_000;

/** One failover: the leader killed, the standby leading. Times are from the kill. */
export interface LeaderKill {
  killed: string;
  killedPid: number;
  /** Processes the killed leader had started (they must die with it). */
  children: number;
  successor: string;
  /** The successor's fencing token. */
  token: number;
  killedAtMs: number;
  /** Kill → the standby holds the lock. */
  leadingMs: number;
  /** Kill → the standby has taken the open runs over (their processes started again). */
  resumedMs: number;
  /** Runs the successor took over. */
  runs: string[];
}

/**
 * Control-plane replicas as real processes (`services/control-plane/dist/main.js`)
 * on one Redis and key prefix, with leader election over the Redis lock:
 * one leader and one standby. Every process a replica starts is tracked
 * (through /proc) so that, when the replica is gone, the suite can check
 * that its children are gone too, and kill any that are not.
 */
export class ControlPlaneReplicas {
  private readonly replicas: ControlPlaneReplica[] = [];
  private leaderIndex = 0;
  private nextName = 0;
  /** Children of replicas that are gone: each must exit by itself. */
  private readonly orphans: SeenProcess[] = [];

  private constructor(
    private readonly options: { redisUrl: string; keyPrefix: string; env: Record<string, string> },
  ) {}

  /** Starts the leader, waits until it leads, then starts a standby. */
  static async start(options: { redisUrl: string; keyPrefix: string; env: Record<string, string> }): Promise<ControlPlaneReplicas> {
    const set = new ControlPlaneReplicas(options);
    try {
      const first = await set.add();
      await first.waitForLeading({ timeoutMs: TAKEOVER_LIMIT_MS });
      await set.add();
    } catch (err) {
      await set.stop();
      throw err;
    }
    return set;
  }

  /** The replica that leads (as this set last saw it). */
  get leader(): ControlPlaneReplica {
    const r = this.replicas[this.leaderIndex];
    if (!r) throw new Error('no control-plane replica is running');
    return r;
  }

  /** Leader-election takeovers seen, counting none for the first leader. */
  get takeovers(): number {
    return this.replicas.reduce((n, r) => n + r.takeovers().length, 0) - 1;
  }

  /**
   * kill -9 the leader, wait until the standby leads (it takes the runs
   * over), and with `replaceStandby` start a fresh standby behind it.
   */
  async killLeader(replaceStandby: boolean): Promise<LeaderKill> {
    const victim = this.leader;
    const successorIndex = this.replicas.findIndex((r, i) => i !== this.leaderIndex && isRunning(r));
    const successor = this.replicas[successorIndex];
    if (!successor) throw new Error('no standby replica to take over');
    const seen = successor.takeovers().length;
    const children = descendants(victim.pid);
    this.orphans.push(...children);
    const killedAtMs = await victim.kill9();
    const takeover = await successor.waitForLeading({ timeoutMs: TAKEOVER_LIMIT_MS, seen }).catch((err: unknown) => {
      throw new Error(`${successor.name} did not take over: ${(err as Error).message.slice(0, 2000)}`, { cause: err });
    });
    this.leaderIndex = successorIndex;
    if (replaceStandby) await this.add();
    return {
      killed: victim.name,
      killedPid: victim.pid,
      children: children.length,
      successor: successor.name,
      token: takeover.token,
      killedAtMs,
      leadingMs: takeover.acquiredAtMs - killedAtMs,
      resumedMs: takeover.resumedAtMs - killedAtMs,
      runs: takeover.runs,
    };
  }

  /**
   * Stops every replica (standbys first, so none takes over from a leader
   * shutting down; SIGTERM, SIGKILL after 10 s), then waits for every
   * process any replica started to be gone, SIGKILLing those still running
   * after {@link REAP_LIMIT_MS}. Returns a line for each process that had
   * to be killed (each is a leak: it outlived its control plane).
   */
  async stop(): Promise<string[]> {
    const order = [...this.replicas.filter((_, i) => i !== this.leaderIndex), ...this.replicas.filter((_, i) => i === this.leaderIndex)];
    for (const r of order) {
      if (!isRunning(r)) continue;
      this.orphans.push(...descendants(r.pid));
      await r.process.stop('SIGTERM').catch(() => undefined);
    }
    const leaked = await reap(this.orphans, REAP_LIMIT_MS);
    return leaked.map((p) => `pid ${p.pid} (${p.command}) outlived its control plane; killed`);
  }

  private async add(): Promise<ControlPlaneReplica> {
    const name = `replica-${String.fromCharCode(97 + (this.nextName++ % 26))}`;
    const replica = await startControlPlaneReplica({
      name,
      redisUrl: this.options.redisUrl,
      keyPrefix: this.options.keyPrefix,
      leaseMs: CHAOS_LEADER_LEASE_MS,
      renewMs: CHAOS_LEADER_RENEW_MS,
      env: this.options.env,
    });
    this.replicas.push(replica);
    return replica;
  }
}

function isRunning(r: ControlPlaneReplica): boolean {
  return r.process.child.exitCode === null && r.process.child.signalCode === null;
}
