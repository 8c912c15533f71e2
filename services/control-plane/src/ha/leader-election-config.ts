import { z } from 'zod';
import { TandemError, parseOrThrow } from '@tandem/common';

/**
 * Leader election of control-plane replicas outside Kubernetes (local and
 * none runtimes; the kubernetes runtime elects over a Lease). Every
 * variable is documented in docs/operations.md.
 */
export const LeaderElectionEnv = z
  .object({
    /**
     * `redis`: replicas sharing a Redis elect one leader over a lock in it;
     * the others stand by. `off`: this replica leads unconditionally (one
     * replica only: two would both run every run's loops). @default off
     */
    TANDEM_LEADER_ELECTION: z.enum(['off', 'redis']).default('off'),
    /** How long the lock outlives the leader's last renewal: the worst-case failover time. @default 10000 */
    TANDEM_LEADER_LEASE_MS: z.coerce.number().int().min(300).max(600_000).default(10_000),
    /** Renewal period of the leader and campaign period of standbys. @default 1000 */
    TANDEM_LEADER_RENEW_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
    /** HTTP URL standbys tell clients to use for this replica. @default the bound HTTP address */
    TANDEM_ADVERTISE_HTTP_URL: z.string().url().optional(),
    /** gRPC address (host:port) standbys and trainers use for this replica. @default the bound gRPC address */
    TANDEM_ADVERTISE_GRPC_ADDRESS: z.string().regex(/^[^\s/]+:\d+$/, 'must be host:port').optional(),
  })
  .superRefine((e, ctx) => {
    if (e.TANDEM_LEADER_RENEW_MS * 3 > e.TANDEM_LEADER_LEASE_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['TANDEM_LEADER_RENEW_MS'],
        message: `must be at most a third of TANDEM_LEADER_LEASE_MS (${e.TANDEM_LEADER_LEASE_MS}), so the leader renews several times per lease`,
      });
    }
  });

/** Resolved leader-election settings. */
export interface LeaderElectionConfig {
  mode: 'off' | 'redis';
  leaseMs: number;
  renewPeriodMs: number;
  /** Overrides of the addresses stored next to the lock (default: the bound ones). */
  advertise: { httpUrl?: string; grpcAddress?: string };
}

/** Parses the leader-election variables; INVALID_ARGUMENT naming each bad one. */
export function loadLeaderElectionConfig(env: Record<string, string | undefined>, context: { runtime: string }): LeaderElectionConfig {
  const e = parseOrThrow(LeaderElectionEnv, env, 'control-plane environment');
  if (e.TANDEM_LEADER_ELECTION === 'redis' && context.runtime === 'kubernetes') {
    throw TandemError.invalid('control-plane environment', [
      { path: 'TANDEM_LEADER_ELECTION', message: 'redis is for TANDEM_RUNTIME=local or none; the kubernetes runtime elects its leader over a Lease' },
    ]);
  }
  return {
    mode: e.TANDEM_LEADER_ELECTION,
    leaseMs: e.TANDEM_LEADER_LEASE_MS,
    renewPeriodMs: e.TANDEM_LEADER_RENEW_MS,
    advertise: {
      ...(e.TANDEM_ADVERTISE_HTTP_URL ? { httpUrl: e.TANDEM_ADVERTISE_HTTP_URL.replace(/\/+$/, '') } : {}),
      ...(e.TANDEM_ADVERTISE_GRPC_ADDRESS ? { grpcAddress: e.TANDEM_ADVERTISE_GRPC_ADDRESS } : {}),
    },
  };
}
