import { Run, RunStatus } from '@tandem/protocol';
import type { RunView } from '../runs/run-manager.js';

/**
 * A run as the protobuf `Run` message. HTTP answers `Run.toJSON` of the same
 * message, so the two surfaces cannot drift apart.
 */
export function runToProto(view: RunView): Run {
  const s = view.status;
  return Run.fromPartial({
    id: view.id,
    namespace: view.namespace,
    spec: view.spec as unknown as Record<string, unknown>,
    status: RunStatus.fromPartial({
      phase: s.phase,
      message: s.message,
      trainerStep: s.trainerStep,
      policyVersion: s.policyVersion,
      maxSteps: s.maxSteps,
      ledger: s.ledger,
      queueDepth: s.queueDepth,
      inFlight: s.inFlight,
      generators: s.generators,
      minGeneratorVersion: s.minGeneratorVersion,
      maxGeneratorVersion: s.maxGeneratorVersion,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      finishedAt: s.finishedAt,
    }),
  });
}
