import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';
import { FailurePolicySpec, GeneratorSpec, RolloutWorkersSpec, RunSpecSchema, type RunSpec } from './run-spec.js';

/**
 * The RLRun spec: the run spec extended with what the Kubernetes runtime
 * needs to turn a run into pods (images, GPUs, placement, suspension,
 * failure policy, Kueue). Every run-spec field keeps its meaning; the
 * generator, rolloutWorkers and failurePolicy objects gain fields. The CRD
 * `rlruns.tandem.dev` is generated from this schema (scripts/gen-crd.mjs),
 * so this file is its single source of truth too. `.describe()` texts become
 * the CRD's descriptions (`kubectl explain rlrun.spec.generator`).
 */

const KUBE_INT_OR_STRING = { 'x-kubernetes-int-or-string': true } as const;

/** A Kubernetes resource quantity (`4`, `500m`, `16Gi`). */
export const Quantity = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(/^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/),
  ])
  .meta(KUBE_INT_OR_STRING)
  .describe('A resource quantity such as 4, 500m or 16Gi.');

const ResourceName = z.string().min(1).max(253);

/** Container resources, as in a Pod: `nvidia.com/gpu`, `cpu`, `memory`, … */
export const ResourceRequirements = z
  .strictObject({
    requests: z.record(ResourceName, Quantity).optional().describe('Minimum resources (scheduling).'),
    limits: z.record(ResourceName, Quantity).optional().describe('Maximum resources. Extended resources such as nvidia.com/gpu must have limit = request.'),
  })
  .describe('Container resources; nvidia.com/gpu counts whole GPUs.');

/** A Pod toleration. */
export const Toleration = z.strictObject({
  key: z.string().max(253).optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().max(63).optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.number().int().optional(),
});

/** Placement shared by every role. */
const placement = {
  nodeSelector: z.record(z.string().min(1).max(317), z.string().max(63)).optional().describe('Node labels the pods must match.'),
  tolerations: z.array(Toleration).max(64).optional().describe('Taints the pods tolerate (GPU nodes are often tainted).'),
};

const imageField = z.string().min(1).max(1024);

const EnvVar = z.strictObject({
  name: z.string().min(1).max(256),
  value: z.string().max(32_768),
});

/** The generator pool on Kubernetes: one StatefulSet of vLLM servers. */
export const GeneratorK8sSpec = GeneratorSpec.extend({
  image: imageField.optional().describe('vLLM server image. Defaults to the operator\'s TANDEM_GENERATOR_IMAGE (the simulator image for simulated runs).'),
  /** GPUs per replica for tensor parallelism (vLLM --tensor-parallel-size). @default 1 */
  tensorParallelSize: z.number().int().positive().max(64).default(1).describe('vLLM --tensor-parallel-size; also the GPUs requested per replica unless resources name nvidia.com/gpu.'),
  resources: ResourceRequirements.optional(),
  ...placement,
  vllmArgs: z.array(z.string().max(4096)).max(256).optional().describe('Extra vLLM command-line arguments, appended after the ones Tandem sets.'),
  env: z.array(EnvVar).max(256).optional().describe('Extra environment variables for the vLLM container.'),
});

/** Where the trainer keeps its checkpoints, so a suspended or restarted trainer resumes. */
export const CheckpointSpec = z
  .strictObject({
    /** @default /checkpoints */
    mountPath: z.string().regex(/^\/[^\0]*$/).max(1024).default('/checkpoints').describe('Where the checkpoint volume is mounted in the trainer.'),
    volumeClaimName: z.string().min(1).max(253).optional().describe('An existing PersistentVolumeClaim to mount (ReadWriteMany for multi-node trainers).'),
    storage: z
      .strictObject({
        size: Quantity,
        storageClassName: z.string().min(1).max(253).optional(),
        accessMode: z.enum(['ReadWriteOnce', 'ReadWriteMany']).default('ReadWriteOnce'),
      })
      .optional()
      .describe('Have the operator create a PVC <run>-checkpoints owned by the RLRun (deleted with it, kept across suspend).'),
    uri: z.string().min(1).max(2048).optional().describe('Object-storage URI passed to the trainer (TANDEM_CHECKPOINT_URI).'),
  })
  .superRefine((c, ctx) => {
    if (c.volumeClaimName !== undefined && c.storage !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['storage'], message: 'set either volumeClaimName or storage, not both' });
    }
  });

/** The trainer: TRL + the Tandem trainer agent, one pod per node in an Indexed Job. */
export const TrainerK8sSpec = z.strictObject({
  image: imageField.optional().describe('Trainer image (TRL + tandem trainer agent). Defaults to the operator\'s TANDEM_TRAINER_IMAGE.'),
  /** @default 1 */
  numNodes: z.number().int().positive().max(1024).default(1).describe('Trainer pods (torchrun nodes).'),
  /** @default 1 */
  procsPerNode: z.number().int().positive().max(64).default(1).describe('Processes (GPUs) per trainer pod; also the GPUs requested per pod unless resources name nvidia.com/gpu.'),
  resources: ResourceRequirements.optional(),
  ...placement,
  args: z.array(z.string().max(4096)).max(256).optional().describe('Extra trainer arguments.'),
  env: z.array(EnvVar).max(256).optional(),
  checkpoint: CheckpointSpec.optional(),
});

/** Rollout workers on Kubernetes: one Deployment. */
export const RolloutWorkersK8sSpec = RolloutWorkersSpec.extend({
  image: imageField.optional().describe('Rollout worker image. Defaults to the operator\'s TANDEM_ROLLOUT_WORKER_IMAGE.'),
  resources: ResourceRequirements.optional(),
  ...placement,
});

/** The roles of a run's workloads. */
export const RunRole = z.enum(['generator', 'trainer', 'rolloutWorker']);
export type RunRole = z.infer<typeof RunRole>;

/**
 * What a role's failure does. `RestartRole` restarts only that role (the
 * default); `RestartRun` recreates every workload of the run (generators
 * rejoin, the trainer resumes from its checkpoint); `FailRun` ends the run.
 * Each role may restart `maxRestarts` times (RestartRun counts against the
 * run); one more failure fails the run.
 */
export const FailureAction = z.enum(['RestartRole', 'RestartRun', 'FailRun']);
export type FailureAction = z.infer<typeof FailureAction>;

export const FailurePolicyK8sSpec = FailurePolicySpec.extend({
  rules: z
    .array(z.strictObject({ role: RunRole, action: FailureAction }))
    .max(3)
    .optional()
    .describe('Per-role action on failure; roles without a rule use RestartRole.'),
}).superRefine((p, ctx) => {
  const seen = new Set<string>();
  p.rules?.forEach((r, i) => {
    if (seen.has(r.role)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'role'], message: `duplicate rule for role ${r.role}` });
    seen.add(r.role);
  });
});

/** Kueue and scheduler settings, applied to every workload of the run. */
export const SchedulingSpec = z.strictObject({
  queueName: z.string().min(1).max(63).optional().describe('Kueue LocalQueue (label kueue.x-k8s.io/queue-name on the workloads).'),
  schedulerName: z.string().min(1).max(253).optional().describe('Pod schedulerName (e.g. a gang scheduler).'),
  priorityClassName: z.string().min(1).max(253).optional(),
});

/** The RLRun spec: the run spec plus the Kubernetes extension. */
export const RLRunSpecSchema = RunSpecSchema.safeExtend({
  generator: GeneratorK8sSpec.default(GeneratorK8sSpec.parse({})),
  rolloutWorkers: RolloutWorkersK8sSpec.default(RolloutWorkersK8sSpec.parse({})),
  failurePolicy: FailurePolicyK8sSpec.default(FailurePolicyK8sSpec.parse({})),
  trainer: TrainerK8sSpec.default(TrainerK8sSpec.parse({})),
  /** @default false */
  suspend: z.boolean().default(false).describe('Suspend the run: pods are deleted, the queue, ledger and checkpoint are kept; false resumes.'),
  activeDeadlineSeconds: z.number().int().positive().max(31_536_000).optional().describe('Fail the run after this long running (the clock restarts on resume, as for a Job).'),
  scheduling: SchedulingSpec.optional(),
});

/** An RLRun spec as written by a user. */
export type RLRunSpecInput = z.input<typeof RLRunSpecSchema>;
/** A validated RLRun spec with defaults applied. It is also a valid {@link RunSpec}. */
export type RLRunSpec = z.output<typeof RLRunSpecSchema>;

/** Validates an RLRun spec, throwing INVALID_ARGUMENT that names each bad field. */
export function parseRLRunSpec(input: unknown): RLRunSpec {
  return parseOrThrow(RLRunSpecSchema, input, 'RLRun spec');
}

/** The action for a role's failures under a failure policy. */
export function failureActionFor(spec: RLRunSpec, role: RunRole): FailureAction {
  return spec.failurePolicy.rules?.find((r) => r.role === role)?.action ?? 'RestartRole';
}

// Compile-time check that an RLRun spec can be stored wherever a run spec is.
const _isRunSpec: (s: RLRunSpec) => RunSpec = (s) => s;
void _isRunSpec;
