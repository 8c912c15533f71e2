import type { Metadata, ServiceDefinition, UntypedHandleCall, UntypedServiceImplementation, sendUnaryData } from '@grpc/grpc-js';
import { ErrorCode, TandemError } from '@tandem/common';
import { toGrpcError } from '../api/grpc-errors.js';
import type { LeaderInfo } from './redis-leader-lock.js';

/** Stable reason of the error a standby answers with. */
export const NOT_LEADER = 'NOT_LEADER';

/**
 * Whether this replica may change runs. With leader election off every
 * replica is the leader; otherwise only the holder of the leader lock is.
 */
export interface LeaderGate {
  isLeader(): boolean;
  /** The current leader as stored next to the lock (undefined: none now, or election off). */
  leader(): Promise<LeaderInfo | undefined>;
}

/**
 * UNAVAILABLE, reason NOT_LEADER, naming the leader's addresses in a fixed
 * form (`the leader is at <httpUrl> (gRPC <grpcAddress>)`) that clients
 * (the tandem CLI) parse to redirect. Retryable: a standby becomes the
 * leader when the leader goes.
 */
export function notLeaderError(leader: LeaderInfo | undefined): TandemError {
  const where = leader
    ? `the leader is at ${leader.httpUrl} (gRPC ${leader.grpcAddress})`
    : 'no leader holds the lock right now (an election is under way); retry shortly';
  return new TandemError(ErrorCode.Unavailable, `this control plane is a standby: ${where}`, { reason: NOT_LEADER });
}

/** Throws {@link notLeaderError} when this replica is not the leader. */
export async function assertLeader(gate: LeaderGate): Promise<void> {
  if (gate.isLeader()) return;
  throw notLeaderError(await gate.leader().catch(() => undefined));
}

/** What every server call is: streams report an error by emitting it (grpc-js then ends the call with that status). */
type AnyCall = { emit(event: 'error', err: unknown): boolean; metadata: Metadata; request?: unknown };

/**
 * Wraps a gRPC service's handlers so that, on a standby, every method not
 * in `readOnly` answers UNAVAILABLE naming the leader (once, and without
 * running the handler). Leadership is checked per call: a standby that
 * becomes the leader serves the next call.
 */
export function guardService(
  definition: ServiceDefinition,
  handlers: UntypedServiceImplementation,
  gate: LeaderGate,
  readOnly: ReadonlySet<string> = new Set(),
  /**
   * Runs on a standby before it names the leader (authentication: a caller
   * without valid credentials learns nothing, not even where the leader is).
   */
  preflight?: (call: { metadata: Metadata; request?: unknown }) => Promise<unknown>,
): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    const method = definition[name];
    if (!method || readOnly.has(name)) {
      out[name] = handler;
      continue;
    }
    const unary = !method.responseStream && !method.requestStream;
    const clientStreaming = method.requestStream && !method.responseStream;
    const guarded = (call: AnyCall, callback?: sendUnaryData<unknown>): void => {
      if (gate.isLeader()) {
        (handler as (c: AnyCall, cb?: sendUnaryData<unknown>) => void)(call, callback);
        return;
      }
      const answer = (error: TandemError): void => {
        const err = toGrpcError(error);
        if ((unary || clientStreaming) && callback) callback(err);
        else call.emit('error', err);
      };
      void Promise.resolve(preflight?.(call))
        .then(async () => notLeaderError(await gate.leader().catch(() => undefined)))
        .catch((err: unknown) => TandemError.from(err))
        .then(answer);
    };
    out[name] = guarded as UntypedHandleCall;
  }
  return out;
}
