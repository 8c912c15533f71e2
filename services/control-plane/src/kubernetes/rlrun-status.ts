import { z } from 'zod';

/**
 * The RLRun status, written only by the reconciler (through the status
 * subresource). Like the spec, it is one zod schema from which the CRD's
 * status schema is generated.
 */

/** Condition types, each with `status` True/False/Unknown and a CamelCase reason. */
export const ConditionType = {
  /** Every desired generator pod is Ready and registered with the weight-sync coordinator. */
  GeneratorsReady: 'GeneratorsReady',
  /** Every trainer pod is Ready. */
  TrainerReady: 'TrainerReady',
  /** The run has workloads and is not suspended or ended. */
  Running: 'Running',
  /** `spec.suspend` is true and the pods are gone. */
  Suspended: 'Suspended',
  /** Running with less than it wants: a role is short of ready pods, or restarting. */
  Degraded: 'Degraded',
  /** Trained to `maxSteps` (True), or ended otherwise (False with the reason). */
  Complete: 'Complete',
  /** Ended by failure: out of restarts, deadline, invalid spec, a FailRun rule. */
  Failed: 'Failed',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** A metav1.Condition. */
export const Condition = z.strictObject({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().nonnegative().optional(),
  lastTransitionTime: z.string().min(1).describe('RFC 3339 time of the last status change.'),
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32_768),
});
export type Condition = z.infer<typeof Condition>;

/** Run phases on the RLRun (the API's phases plus Suspended and Restarting). */
export const RLRunPhase = z.enum(['Pending', 'Running', 'Suspended', 'Restarting', 'Succeeded', 'Failed', 'Cancelled']);
export type RLRunPhase = z.infer<typeof RLRunPhase>;

const count = z.number().int().nonnegative();
const version = z.number().int().min(-1);

/** Pods of each role: desired and ready. */
export const RoleReplicas = z.strictObject({ desired: count, ready: count });

/** Progress of the run, copied from the control plane's run view. */
export const RLRunProgress = z.strictObject({
  trainerStep: count,
  maxSteps: count,
  policyVersion: count,
  minGeneratorVersion: version.describe('Oldest version a serving generator holds; -1 when none serves.'),
  maxGeneratorVersion: version,
  meanAgeSteps: z.number().nonnegative().optional().describe('Mean age (steps) of trained groups since the run started.'),
  maxAgeSteps: count.optional(),
  queueDepth: count,
  inFlight: count,
  tokensPerSecond: z.number().nonnegative().optional().describe('Completion tokens trained per second, over the last status interval.'),
  lastUpdateTime: z.string().min(1),
});
export type RLRunProgress = z.infer<typeof RLRunProgress>;

/** A generator pod registered with the weight-sync coordinator. */
export const RegisteredGenerator = z.strictObject({
  id: z.string().min(1),
  podUID: z.string().min(1),
  url: z.string().min(1),
  /** Container restarts of the pod when it registered: a restarted vLLM lost its weights and registers again. */
  restartCount: count.optional(),
});
export type RegisteredGenerator = z.infer<typeof RegisteredGenerator>;

export const RLRunStatusSchema = z.strictObject({
  observedGeneration: count.optional(),
  phase: RLRunPhase.optional(),
  message: z.string().max(32_768).optional(),
  runId: z.string().optional().describe('The run id in the control plane (the RLRun name).'),
  conditions: z
    .array(Condition)
    .max(16)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
    .optional(),
  replicas: z
    .strictObject({
      generators: RoleReplicas.extend({ registered: count }),
      trainer: RoleReplicas,
      rolloutWorkers: RoleReplicas,
    })
    .optional(),
  progress: RLRunProgress.optional(),
  restarts: z
    .strictObject({ generator: count, trainer: count, rolloutWorker: count, run: count })
    .optional()
    .describe('Failures handled per role (and whole-run restarts).'),
  registeredGenerators: z
    .array(RegisteredGenerator)
    .max(4096)
    .meta({
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['id'],
      description: 'Generator pods registered for weight sync; a pod with a new UID re-registers.',
    })
    .optional(),
  handledTrainerFailure: z.string().optional().describe('UID of the last failed trainer Job already acted on.'),
  startTime: z.string().optional(),
  completionTime: z.string().optional(),
});
export type RLRunStatus = z.infer<typeof RLRunStatusSchema>;
