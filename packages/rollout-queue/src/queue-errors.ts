import { ErrorCode, TandemError } from '@tandem/common';

/**
 * Negative codes returned by the Lua scripts (see their headers), mapped to
 * typed errors in this one place.
 */
export const ScriptCode = {
  RunNotOpen: -1,
  RunComplete: -2,
  UnknownGroup: -3,
  NotInFlight: -4,
  AlreadyTrained: -6,
  StepAhead: -7,
  NotServed: -8,
  BadVersions: -9,
  Integrity: -10,
  RunMissing: -11,
  Fenced: -12,
} as const;

/** Turns a negative script code into a TandemError that says what happened. */
export function scriptError(code: number, context: { runId: string; step?: number; groupId?: string; fencingToken?: number }): TandemError {
  const { runId, step, groupId } = context;
  switch (code) {
    case ScriptCode.RunNotOpen:
      return new TandemError(ErrorCode.FailedPrecondition, `run ${runId} is not open (cancelled or failed)`, { reason: 'RUN_NOT_OPEN' });
    case ScriptCode.RunComplete:
      return new TandemError(ErrorCode.FailedPrecondition, `run ${runId} is complete`, { reason: 'RUN_COMPLETE' });
    case ScriptCode.UnknownGroup:
      return new TandemError(ErrorCode.NotFound, `group ${groupId} was never admitted to run ${runId}`);
    case ScriptCode.NotInFlight:
      return new TandemError(ErrorCode.FailedPrecondition, `group ${groupId} of run ${runId} is no longer in flight`, { reason: 'GROUP_NOT_IN_FLIGHT' });
    case ScriptCode.AlreadyTrained:
      return new TandemError(ErrorCode.FailedPrecondition, `step ${step} of run ${runId} was already trained`, { reason: 'STEP_ALREADY_TRAINED' });
    case ScriptCode.StepAhead:
      return new TandemError(
        ErrorCode.FailedPrecondition,
        `step ${step} of run ${runId} is ahead of the trainer: ack the previous step first`,
        { reason: 'STEP_AHEAD' },
      );
    case ScriptCode.NotServed:
      return new TandemError(ErrorCode.FailedPrecondition, `no batch was served for step ${step} of run ${runId}`, { reason: 'BATCH_NOT_SERVED' });
    case ScriptCode.BadVersions:
      return TandemError.invalid('prompt group', [
        { path: 'minPolicyVersion', message: 'policy versions must be integers with min <= max' },
      ]);
    case ScriptCode.Integrity:
      return new TandemError(ErrorCode.Internal, `batch ${step} of run ${runId} holds a group not in state served`);
    case ScriptCode.RunMissing:
      return new TandemError(ErrorCode.NotFound, `run ${runId} not found`);
    case ScriptCode.Fenced:
      // UNAVAILABLE: this control plane is no longer the leader; the caller
      // should go to the current one (retrying here fails the same way).
      return new TandemError(
        ErrorCode.Unavailable,
        `run ${runId} was taken over by a newer control-plane leader (this replica's fencing token ${context.fencingToken ?? '?'} is below the run's fence): not the leader`,
        { reason: 'FENCED' },
      );
    default:
      return new TandemError(ErrorCode.Internal, `unexpected script code ${code} for run ${runId}`);
  }
}
